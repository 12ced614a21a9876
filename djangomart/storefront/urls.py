from django.urls import path

from djangomart.storefront import views_account, views_brand, views_cart, views_catalog

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
    # Beside allauth's pages under account/ (djangomart/urls.py).
    path("account/orders/", views_account.order_list, name="account-orders"),
    path("account/orders/<uuid:order_id>/", views_account.order_detail, name="account-order"),
    path("account/addresses/", views_account.address_list, name="account-addresses"),
    path("account/addresses/new/", views_account.address_add, name="account-address-add"),
    path(
        "account/addresses/<uuid:address_id>/",
        views_account.address_edit,
        name="account-address-edit",
    ),
    path(
        "account/addresses/<uuid:address_id>/delete",
        views_account.address_delete,
        name="account-address-delete",
    ),
    path(
        "account/addresses/<uuid:address_id>/default",
        views_account.address_default,
        name="account-address-default",
    ),
]
