from django.urls import path

from bench.app import views

urlpatterns = [
    path("bench/bare", views.bare),
    path("bench/naive-ack", views.naive_ack),
    path("bench/seed-style", views.seed_style),
]
