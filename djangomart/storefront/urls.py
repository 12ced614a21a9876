from django.urls import path

from djangomart.storefront import views_brand, views_cart, views_catalog

app_name = "storefront"

urlpatterns = [
    path("", views_catalog.home, name="home"),
    path("products/", views_catalog.listing, name="products"),
    path("c/<slug:slug>/", views_catalog.listing, name="category"),
    path("p/<slug:slug>/", views_catalog.product, name="product"),
    path("cart/", views_cart.cart, name="cart"),
    path("cart/add", views_cart.cart_add, name="cart-add"),
    path("cart/update", views_cart.cart_update, name="cart-update"),
    path("checkout/", views_cart.checkout, name="checkout"),
    path("brand/logo", views_brand.logo, name="brand-logo"),
]
