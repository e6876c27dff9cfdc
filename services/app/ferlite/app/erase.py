"""`ferlite erase`: delete everything stored about one classroom (events, per-minute counts,
idempotency markers) through the aggregator's admin-only EraseClassroom call. Nothing of the
classroom remains in Redis afterwards; per-architecture accuracy and drift figures, which name no
classroom, stay. Refused while the aggregator's spool still holds events (they would come back)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import grpc

from ferlite.base.cli import HelpFormatter
from ferlite.services.common.channels import open_channel
from ferlite.v1 import aggregator_pb2, aggregator_pb2_grpc

from .stream import access_from, add_access_flags, call_failed, check_reachable, find_stack


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="ferlite erase", description=__doc__)
    p.add_argument("--classroom", required=True, help="the classroom id whose data is deleted")
    p.add_argument("--aggregator", default=None,
                   help="aggregator service (default: the local stack's, 127.0.0.1:50053 at offset 0)")
    p.add_argument("--yes", action="store_true", help="really delete (without it, nothing is done)")
    p.add_argument("--json", action="store_true", help="print what was deleted as JSON")
    add_access_flags(p)
    args = p.parse_args(argv)
    if not args.yes:
        print(f"ferlite erase: this deletes every stored event of classroom {args.classroom!r} and cannot be "
              "undone; run again with --yes", file=sys.stderr)
        return 2
    ports, _ = find_stack(args, "ferlite erase")
    args.aggregator = args.aggregator or f"{ports.host}:{ports.aggregator_port}"
    security = access_from(args)
    try:
        check_reachable(args.aggregator, security=security)
        with open_channel(args.aggregator, security) as channel:
            reply = aggregator_pb2_grpc.AggregatorStub(channel).EraseClassroom(
                aggregator_pb2.EraseClassroomRequest(classroom_id=args.classroom), timeout=120)
    except (ConnectionError, grpc.RpcError) as exc:
        return call_failed("ferlite erase", exc)
    deleted = {"classroom": reply.classroom_id, "events": reply.events, "minute_buckets": reply.minute_buckets,
               "markers": reply.markers}
    if args.json:
        print(json.dumps(deleted))
    else:
        print(f"erased classroom {reply.classroom_id}: {reply.events:,} events, {reply.minute_buckets:,} "
              f"per-minute counts, {reply.markers:,} event markers")
    return 0
