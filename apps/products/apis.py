from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.products.models import ProductStatus
from apps.products.rank import RANK_DAYS, RANK_SIZE
from apps.products.selectors import popular_products, selling_products


class ProductListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        price = serializers.IntegerField(min_value=1)
        stock = serializers.IntegerField(source="stock.quantity", min_value=0)
        status = serializers.ChoiceField(choices=ProductStatus.choices)

        class Meta:
            ref_name = "Product"

    @extend_schema(
        operation_id="products_list",
        tags=["products"],
        summary="The products on sale",
        description="Every SELLING product, by id, with the units in stock.",
        responses={200: OutputSerializer(many=True)},
    )
    def get(self, request):
        return Response(self.OutputSerializer(selling_products(), many=True).data)


class ProductRankApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        price = serializers.IntegerField(min_value=1)
        sold_quantity = serializers.IntegerField()

        class Meta:
            ref_name = "ProductRank"

    @extend_schema(
        operation_id="products_ranks",
        tags=["products"],
        summary="The best sellers",
        description=(
            f"The top {RANK_SIZE} products by units sold over the last {RANK_DAYS} days including today (the shop's "
            "time zone), most sold first."
        ),
        responses={200: OutputSerializer(many=True, max_length=RANK_SIZE)},
    )
    def get(self, request):
        return Response(popular_products())
