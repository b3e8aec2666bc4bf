from django.urls import path

from apps.products.apis import ProductListApi, ProductRankApi

urlpatterns = [
    path("products", ProductListApi.as_view(), name="product-list"),
    path("products/ranks", ProductRankApi.as_view(), name="product-ranks"),
]
