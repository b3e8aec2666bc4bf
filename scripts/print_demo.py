"""Tell the person at `make run` how to try the system: a demo user's token and ready-to-paste curl lines.

Reads the JSON that `manage.py seed_demo` printed, waits until the API answers (or gives up when the
process it watches, honcho, is gone), prints the instructions and saves them next to the JSON.

    python scripts/print_demo.py .run/demo.json --api http://127.0.0.1:8000 --while-alive <pid>
"""

import argparse
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.5
RULE = "=" * 100


def process_alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it is just not ours
        return True
    return True


def api_answers(api: str, token: str) -> bool:
    request = urllib.request.Request(f"{api}/api/v1/products", headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_for_api(api: str, token: str, *, timeout: float, while_alive: int | None) -> bool:
    """True once the API answers; False when the watched process is gone or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process_alive(while_alive):
        if api_answers(api, token):
            return True
        time.sleep(POLL_SECONDS)
    return False


def instructions(demo: dict[str, Any], *, api: str, demo_file: Path) -> str:
    user, product, coupon, staff = demo["users"][0], demo["products"][0], demo["coupons"][0], demo["staff"]
    auth = shlex.quote(f"Authorization: Token {user['token']}")
    body = shlex.quote(json.dumps({"items": [{"product_id": product["id"], "quantity": 1}], "user_coupon_id": None}))
    place = (
        f"curl -sS -X POST {api}/api/v1/orders -H {auth} -H 'Content-Type: application/json' "
        f"-H 'Idempotency-Key: my-first-order' -d {body}"
    )
    read = f"curl -sS {api}/api/v1/orders/ORDER_ID -H {auth}"
    take_id = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])'"
    both = f'ORDER_ID=$({place} | {take_id}) && sleep 2 && curl -sS {api}/api/v1/orders/"$ORDER_ID" -H {auth}'
    cancel = f"curl -sS -X POST {api}/api/v1/orders/ORDER_ID/cancel -H {auth}"
    issue = (
        f"curl -sS -X POST {api}/api/v1/users/{user['id']}/coupons/issue -H {auth} "
        f"-H 'Content-Type: application/json' -d '{json.dumps({'coupon_id': coupon['id']})}'"
    )
    return "\n".join(
        [
            RULE,
            f"The shop is running on {api} with demo data (all of it in {demo_file}).",
            f"Demo user {user['username']} (id {user['id']}), token: {user['token']}",
            "",
            f"Place an order for one {product['name']!r} (id {product['id']}, {product['price']:,} won):",
            f"  {place}",
            "Read it back (ORDER_ID: the id in the answer; the status goes from CREATED to COMPLETED):",
            f"  {read}",
            "Both at once:",
            f"  {both}",
            "Send the order again with the same Idempotency-Key: the same order comes back, nothing is charged twice.",
            "Cancel it (a completed order gives back its money, coupon and stock):",
            f"  {cancel}",
            f"Take the demo coupon ({coupon['discount_rate']:.0%} off) to pass its id as user_coupon_id:",
            f"  {issue}",
            "",
            f"Admin: {api}/admin/  user {staff['username']}  password {staff['password']}",
            f"API docs: {api}/api/docs/  (the OpenAPI document: {api}/api/schema/)",
            "Ctrl-C stops everything.",
            RULE,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_file", type=Path, help="the JSON printed by manage.py seed_demo")
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="where the API listens")
    parser.add_argument("--while-alive", type=int, help="stop waiting when this process is gone")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the API")
    args = parser.parse_args()

    demo = json.loads(args.demo_file.read_text())
    if not demo["users"] or not demo["products"]:
        print("The demo data has no users or no products: nothing to order.", file=sys.stderr)
        return 1
    if not wait_for_api(args.api, demo["staff"]["token"], timeout=args.timeout, while_alive=args.while_alive):
        if process_alive(args.while_alive):
            print(f"The API did not answer on {args.api} within {args.timeout:.0f} s.", file=sys.stderr)
        return 1
    text = instructions(demo, api=args.api, demo_file=args.demo_file)
    args.demo_file.with_suffix(".txt").write_text(text + "\n")
    print(f"\n{text}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
