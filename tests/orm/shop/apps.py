from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "shop.fields.SiteUniqueAutoField"

    def ready(self):
        from django.db.models.signals import pre_save
        from .fields import assign_deltasync_id
        pre_save.connect(assign_deltasync_id, weak=False)
