"""The shop a deltasync user would write: the models the ORM e2e suite migrates and syncs.

django_suite.py edits this file between phases (a renamed field, a field added with a
default) and runs makemigrations after each edit, as an application's developer would.
"""
import uuid

from django.db import models

from .fields import DeltasyncIdField


class Store(models.Model):
    name = models.CharField(max_length=100)
    city = models.CharField(max_length=100)


class Tag(models.Model):
    label = models.CharField(max_length=50)


class Product(models.Model):
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="products")
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.IntegerField()
    attrs = models.JSONField(default=dict)
    # An explicit through model: Django 3.2 gives an auto-created one a 32-bit AutoField,
    # which neither holds a site-unique id nor avoids collisions between sites.
    tags = models.ManyToManyField(Tag, related_name="products", through="ProductTag")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class ProductTag(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE)

    class Meta:
        unique_together = [("product", "tag")]


class Order(models.Model):
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="orders")
    customer = models.CharField(max_length=100)
    placed_at = models.DateTimeField(auto_now_add=True)


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="lines")
    quantity = models.IntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)


class Coupon(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(max_length=32)
    percent_off = models.IntegerField()
