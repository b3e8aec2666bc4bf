from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.products.selectors import popular_products, selling_products


class ProductListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        price = serializers.IntegerField()
        stock = serializers.IntegerField(source="stock.quantity")
        status = serializers.CharField()

    def get(self, request):
        return Response(self.OutputSerializer(selling_products(), many=True).data)


class ProductRankApi(APIView):
    def get(self, request):
        return Response(popular_products())
