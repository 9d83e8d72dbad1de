"""The one-shot operations: queues, task, pause/resume, dead letters.

Each calls the same engine functions the console's screens call (`engine.queues`,
`engine.dead`, `Broker.enqueue`): there is no second code path. To add a command, write its
`add_*`/`run_*` (here or in a module of its own, as `task_cmds`) and append one `Command` to
`COMMANDS`.

The engine is imported inside the `run_*` functions: building the parser (every start,
`--help`, `--version`) must not pay for importing the engine and redis.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from spool_console.audit_cmd import add_audit, run_audit
from spool_console.cli_output import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Output,
    age,
    confirm,
)
from spool_console.options import non_negative_int, positive_int
from spool_console.restore_cmd import add_restore_parsers, run_deleted, run_restore, undo_note
from spool_console.task_cmds import add_cancel, add_schedules, run_cancel, run_schedules

if TYPE_CHECKING:
    from engine.broker import Broker
    from engine.dead import DeadItem

Run = Callable[["Broker", argparse.Namespace, Output], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Command:
    """A subcommand: its parser's arguments and the coroutine that runs it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Run


async def _audit(
    broker: Broker, action: str, scope: str, result: str, *, undo: str = "", held: int = 0
) -> None:
    """Append the operator action to the audit trail, as the console and the API do."""
    from engine.audit import AuditEntry, record_quietly

    entry = AuditEntry.now(action, scope, result, via="cli", undo=undo, held=held)
    await record_quietly(broker, entry)


# ---- queues -------------------------------------------------------------------------------


def add_queues(p: argparse.ArgumentParser) -> None:
    """`queues` takes no arguments of its own."""


async def run_queues(broker: Broker, args: argparse.Namespace, out: Output) -> int:
    """Every known queue with its depths."""
    import msgspec

    from engine import queues as queue_ops
    from engine.http.contract import queue_view

    stats = await queue_ops.all_queue_stats(broker)
    if out.as_json:
        out.json([msgspec.to_builtins(queue_view(s)) for s in stats])
        return EXIT_OK
    rows = [
        (
            s.queue,
            "paused" if s.paused else "running",
            s.pending,
            " ".join(f"{lvl}={n}" for lvl, n in s.depth_by_level.items()),
            s.scheduled,
            s.active,
            s.dead,
        )
        for s in stats
    ]
    headers = ("queue", "state", "pending", "by level", "scheduled", "active", "dead")
    out.table(headers, rows, "no queues yet")
    return EXIT_OK


# ---- task show / enqueue ------------------------------------------------------------------


def add_task(p: argparse.ArgumentParser) -> None:
    """`task show ID` (also `task ID`) and `task enqueue NAME …`."""
    sub = p.add_subparsers(dest="task_command", metavar="{show,enqueue}", required=True)
    show = sub.add_parser("show", help="one task's state and record", allow_abbrev=False)
    show.add_argument("id", help="task id")
    show.add_argument("--queue", help="the task's queue (faster; else every queue is searched)")
    enq = sub.add_parser("enqueue", help="enqueue one task", allow_abbrev=False)
    enq.add_argument("name", help="registered task name")
    enq.add_argument("--args", type=_json_arg, default=None, help="JSON array of arguments")
    enq.add_argument("--kwargs", type=_json_arg, default=None, help="JSON object of arguments")
    enq.add_argument("--queue", help="queue (default: default)")
    enq.add_argument("--priority", help="priority level (default: default)")
    enq.add_argument("--delay", type=float, help="seconds before it may run")
    enq.add_argument("--eta", type=float, help="epoch seconds when it may run")
    enq.add_argument("--max-retries", type=non_negative_int, help="retries after the first run")
    enq.add_argument("--timeout", type=float, help="seconds a run may take")
    enq.add_argument("--id", help="your own id (idempotent enqueue)")
    enq.add_argument(
        "--unique-for", type=float, help="seconds an equal task is not enqueued again"
    )
    enq.add_argument("--unique-key", help="what makes tasks equal (default: name and arguments)")
    enq.add_argument(
        "--unique-until", choices=("window", "done"), help="done: the window ends with the task"
    )


def _json_arg(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"must be JSON: {exc}") from None


async def run_task(broker: Broker, args: argparse.Namespace, out: Output) -> int:
    """Show a task, or enqueue one."""
    from engine import queues as queue_ops

    if args.task_command == "enqueue":
        return await _enqueue(broker, args, out)
    info = await queue_ops.task_status(broker, args.id, args.queue)
    if info is None:
        raise CommandError(EXIT_NOT_FOUND, f"no task {args.id!r} (unknown, or its result expired)")
    doc = info.to_dict()
    if out.as_json:
        out.json(doc)
    else:
        for key, value in doc.items():
            shown = orjson.dumps(value).decode() if isinstance(value, list | dict) else value
            out.line(f"{key:>18}  {shown}")
    return EXIT_OK


async def _enqueue(broker: Broker, args: argparse.Namespace, out: Output) -> int:
    import msgspec

    from engine.http.contract import TaskRequest

    fields = {
        "name": args.name,
        "args": args.args,
        "kwargs": args.kwargs,
        "queue": args.queue,
        "priority": args.priority,
        "delay": args.delay,
        "eta": args.eta,
        "max_retries": args.max_retries,
        "timeout": args.timeout,
        "id": args.id,
        "unique_for": args.unique_for,
        "unique_key": args.unique_key,
        "unique_until": args.unique_until,
    }
    try:  # the HTTP contract's rules, so both ways in refuse the same values
        request = msgspec.convert(fields, TaskRequest)
    except msgspec.ValidationError as exc:
        raise CommandError(EXIT_USAGE, f"enqueue: {exc}".replace("$.", "--")) from None
    (task_id,) = await broker.enqueue([request.to_spec(time.time_ns() // 1_000_000)])
    await _audit(broker, "enqueue", f"{args.name} on {request.queue or 'default'}", task_id)
    out.json({"id": task_id}) if out.as_json else out.line(task_id)
    return EXIT_OK


# ---- pause / resume -----------------------------------------------------------------------


def add_queue_name(p: argparse.ArgumentParser) -> None:
    """One positional queue name."""
    p.add_argument("queue", help="queue name")


def _switch(paused: bool) -> Run:
    async def run(broker: Broker, args: argparse.Namespace, out: Output) -> int:
        from engine import queues as queue_ops

        broker.keys(args.queue)  # a bad name is refused before any write (ValueError)
        await (queue_ops.pause if paused else queue_ops.resume)(broker, args.queue)
        await _audit(broker, "pause" if paused else "resume", f"queue {args.queue}", "done")
        if out.as_json:
            out.json({"queue": args.queue, "paused": paused})
        else:
            out.line(f"{args.queue}: {'paused' if paused else 'resumed'}")
        return EXIT_OK

    run.__doc__ = f"{'Pause' if paused else 'Resume'} a queue."
    return run


# ---- dead letters -------------------------------------------------------------------------


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", help="only this queue")
    p.add_argument("--task", help="only this task name")
    p.add_argument("--error", help="only errors containing this text (case-insensitive)")


def add_dead(p: argparse.ArgumentParser) -> None:
    """`dead list|show|groups|requeue|delete|deleted|restore`."""
    sub = p.add_subparsers(dest="dead_command", required=True,
                           metavar="{list,show,groups,requeue,delete,deleted,restore}")
    lst = sub.add_parser("list", help="dead letters, newest first", allow_abbrev=False)
    _filters(lst)
    lst.add_argument("--limit", type=positive_int, default=50, help="rows (default 50)")
    lst.add_argument("--cursor", help="continue from a previous page's cursor")
    show = sub.add_parser("show", help="one dead letter whole", allow_abbrev=False)
    show.add_argument("id", help="task id")
    show.add_argument("--queue", help="its queue (faster; else every queue is searched)")
    groups = sub.add_parser("groups", help="dead letters grouped by error", allow_abbrev=False)
    _filters(groups)
    for verb in ("requeue", "delete"):
        act = sub.add_parser(verb, help=f"{verb} dead letters by id, or --all matching filters",
                             allow_abbrev=False)
        act.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids")
        act.add_argument("--all", action="store_true", help="every dead letter matching filters")
        _filters(act)
        act.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_restore_parsers(sub)


def _dead_row(item: DeadItem) -> tuple[object, ...]:
    return (item.id, item.queue, item.name, item.attempts, age(item.died_at_ms), item.error_line)


async def run_dead(broker: Broker, args: argparse.Namespace, out: Output) -> int:
    """Dispatch `dead …`."""
    import msgspec

    from engine import dead as dead_ops
    from engine.dead import DeadFilter

    command = args.dead_command
    if command == "show":
        return await _dead_show(broker, args, out)
    if command in ("requeue", "delete"):
        return await _dead_act(broker, args, out)
    if command == "deleted":
        return await run_deleted(broker, out)
    if command == "restore":
        return await run_restore(broker, args, out, _audit)
    flt = DeadFilter(queue=args.queue, task=args.task, error=args.error)
    if command == "groups":
        groups = await dead_ops.dead_groups(broker, flt)
        if out.as_json:
            out.json({"groups": [msgspec.to_builtins(g) for g in groups]})
            return EXIT_OK
        rows = [
            (g.count, g.fingerprint, ",".join(g.tasks), ",".join(g.queues),
             age(g.last_seen_ms), g.sample_error.strip().splitlines()[0] if g.sample_error else "")
            for g in groups
        ]
        out.table(("count", "group", "tasks", "queues", "last", "error"), rows, "no dead letters")
        return EXIT_OK
    page = await dead_ops.list_dead(broker, flt, args.limit, args.cursor)
    if out.as_json:
        out.json({"items": [i.to_dict() for i in page.items], "cursor": page.cursor})
        return EXIT_OK
    out.table(("id", "queue", "task", "attempts", "died", "error"),
              [_dead_row(i) for i in page.items], "no dead letters")
    if page.cursor:
        out.line(f"more: --cursor {page.cursor}")
    return EXIT_OK


async def _find(broker: Broker, task_id: str, queue: str | None) -> DeadItem:
    from engine import dead as dead_ops

    item = await (
        dead_ops.get_dead(broker, queue, task_id) if queue else dead_ops.find_dead(broker, task_id)
    )
    if item is None:
        raise CommandError(EXIT_NOT_FOUND, f"no dead letter {task_id!r}")
    return item


async def _dead_show(broker: Broker, args: argparse.Namespace, out: Output) -> int:
    item = await _find(broker, args.id, args.queue)
    if out.as_json:
        out.json(item.to_dict())
        return EXIT_OK
    for key, value in item.to_dict().items():
        if key != "traceback":
            shown = orjson.dumps(value).decode() if isinstance(value, list | dict) else value
            out.line(f"{key:>15}  {shown}")
    out.line()
    out.line(item.traceback.rstrip() or "(no traceback)")
    return EXIT_OK


async def _dead_act(broker: Broker, args: argparse.Namespace, out: Output) -> int:
    from engine import dead as dead_ops
    from engine.dead import DeadFilter
    from engine.undo import new_undo

    verb = args.dead_command
    token = ""
    if bool(args.ids) == bool(args.all):
        raise CommandError(EXIT_USAGE, f"{verb}: give ids or --all, not both or neither")
    if args.ids and (args.task or args.error):
        raise CommandError(EXIT_USAGE, f"{verb}: --task and --error filter --all only")
    newer = None
    if args.all:
        # Pinned to what has died by now: letters dying while the prompt waits are left alone.
        flt, scope = await dead_ops.pin_scope(
            broker, DeadFilter(queue=args.queue, task=args.task, error=args.error)
        )
        assert flt.until_ms is not None
        died_by = time.strftime("%H:%M:%S", time.localtime(flt.until_ms / 1000))
        prompt = f"{verb} {scope:,} dead letter(s) matching {flt.describe()} (died by {died_by})?"
        if scope and not confirm(prompt, args.yes):
            raise CommandError(1, f"{verb}: not confirmed; nothing done")
        done = 0
        if scope and verb == "requeue":
            done = await dead_ops.requeue_matching(broker, flt)
        elif scope:
            token = await new_undo(broker)
            done = await dead_ops.delete_matching(broker, flt, token)
        newer = await dead_ops.count_newer(broker, flt)
    else:
        ids = list(dict.fromkeys(args.ids))
        by_queue: dict[str, list[str]] = {}
        missing = []
        for task_id in ids:
            if args.queue:
                by_queue.setdefault(args.queue, []).append(task_id)
                continue
            item = await dead_ops.find_dead(broker, task_id)
            if item is None:
                missing.append(task_id)
            else:
                by_queue.setdefault(item.queue, []).append(task_id)
        if verb == "delete" and by_queue and not confirm(
            f"delete {sum(map(len, by_queue.values()))} dead letter(s)"
            f"{'' if broker.config.restore_window_s else ' for good'}?",
            args.yes,
        ):
            raise CommandError(1, "delete: not confirmed; nothing done")
        token = await new_undo(broker) if verb == "delete" and by_queue else ""
        done = 0
        for queue, queue_ids in by_queue.items():
            if verb == "requeue":
                done += await dead_ops.requeue_dead(broker, queue, queue_ids)
            else:
                done += await dead_ops.delete_dead(broker, queue, queue_ids, token)
        if not done and (missing or by_queue):
            raise CommandError(EXIT_NOT_FOUND, f"{verb}: no such dead letter(s)")
    scope_text = f"matching {flt.describe()}" if args.all else f"{len(args.ids):,} id(s)"
    await _audit(broker, f"dead {verb}", scope_text, f"{done:,}", undo=token, held=done)
    past = "requeued" if verb == "requeue" else "deleted"
    left = {"newer_left": newer} if newer is not None else {}
    if not out.as_json:
        out.line(f"{past}={done}")
        if newer:
            out.line(f"newer_left={newer} (died after the scope was counted; not {past})")
    note = undo_note(token, done, out)
    if out.as_json:
        out.json({past: done, **left, **note})
    return EXIT_OK


async def _cancel(broker: Broker, args: argparse.Namespace, out: Output) -> int:
    """`cancel ID`, recorded in the audit trail as coming from the CLI."""
    return await run_cancel(broker, args, out, _audit)


COMMANDS: tuple[Command, ...] = (
    Command("queues", "every queue with its depths", add_queues, run_queues),
    Command("task", "show a task (task ID) or enqueue one (task enqueue NAME)", add_task,
            run_task),
    Command("pause", "stop handing out a queue's tasks", add_queue_name, _switch(True)),
    Command("resume", "hand out a queue's tasks again", add_queue_name, _switch(False)),
    Command("dead", "dead letters: list, show, groups, requeue, delete, deleted, restore",
            add_dead, run_dead),
    Command("cancel", "cancel a pending or scheduled task, or stop a running one", add_cancel,
            _cancel),
    Command("schedules", "the periodic tasks, with their last and next run", add_schedules,
            run_schedules),
    Command("audit", "operator actions (console, CLI, API), newest first", add_audit, run_audit),
)
