"""An app installed only by tests/orders/test_seed_demo.py: a new app's demo hook and option (loyalty
points), picked up by seed_demo without a change to the command."""
