"""A throwaway saga participant, installed by the test settings only: loyalty points, reserved when an
order is created, released if it fails, earned when it completes, taken back if it is cancelled.

It proves that the saga is open: it is one folder (this one) and its route lines (routes.py, which the
test settings name as the route table), and the whole test suite runs with it installed. It takes part
only in orders whose customer has a points account (its own data), so every other order runs exactly
the shop's three steps and costs no task here.
"""
