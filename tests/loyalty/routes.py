"""The shop's route table plus the loyalty participant's lines: the only change a new participant makes
outside its own folder (the test settings name this module as EVENT_ROUTES_MODULE). Its step results
need no line: the orders app routes every participant's declared results itself."""

from apps.orders.events import OrderCanceled, OrderCompleted, OrderCreated, OrderFailed
from common.participants import takes_part
from config.event_routes import ROUTES as SHOP_ROUTES
from eventbus.bus import only_if
from tests.loyalty import tasks as loyalty
from tests.loyalty.events import PointsEarned, PointsGivenBack

LOYALTY_ROUTES = {
    OrderCreated: (only_if(takes_part("points"), loyalty.reserve_points_task),),
    OrderCompleted: (only_if(takes_part("points"), loyalty.earn_points_task),),
    OrderFailed: (only_if(takes_part("points"), loyalty.give_back_points_task),),
    OrderCanceled: (only_if(takes_part("points"), loyalty.give_back_points_task),),
    PointsEarned: (),
    PointsGivenBack: (),
}

ROUTES = {
    **SHOP_ROUTES,
    **{event: (*SHOP_ROUTES.get(event, ()), *lines) for event, lines in LOYALTY_ROUTES.items()},
}
