"""What the data platform's table says of an order, for the evidence of a broken invariant. It owns
nothing docs/design.md §5 speaks of, so it has no `check`."""

from apps.dataplatform.models import Delivery


def evidence(order_id: int) -> dict[str, list]:
    return {"deliveries": list(Delivery.objects.filter(order_id=order_id).order_by("pk").values())}
