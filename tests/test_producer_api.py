"""The producer API: declared options are defaults everywhere, arguments checked at enqueue."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from test_http_support import api_client, error_of

from engine import Client, EngineConfig, TaskContext, TaskDeadError, TaskState, task
from engine import queues as queue_ops
from engine.broker import Broker
from engine.declared import TaskArgumentsError
from engine.task import TaskRegistry, TaskSpec
from engine.worker.pool import PoolSettings, WorkerPool


def declare(reg: TaskRegistry) -> Any:
    @task(
        name="report.build",
        queue="reports",
        priority="low",
        max_retries=0,
        timeout=30,
        registry=reg,
    )
    def build_report(day: str, ctx: TaskContext, *, fmt: str = "pdf") -> str:
        raise RuntimeError(f"no report for {day}")

    return build_report


def client_for(redis: Redis, prefix: str, reg: TaskRegistry) -> Client:
    return Client(redis=redis, config=EngineConfig(prefix=prefix), registry=reg)


async def test_a_handler_enqueues_with_its_declared_options(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()
    build_report = declare(reg)
    async with client_for(redis, prefix, reg) as client:
        tid = await client.enqueue(build_report, args=["2026-11-30"])
        info = await client.status(tid)
        assert info is not None
        assert (info.name, info.queue, info.priority, info.max_retries) == (
            "report.build",
            "reports",
            "low",
            0,
        )
        (fetched,) = (await client.broker.fetch("reports", 1, "w")).tasks
        assert fetched.timeout_s == 30


async def test_a_name_takes_the_declared_options_and_explicit_ones_win(
    redis: Redis, prefix: str
) -> None:
    reg = TaskRegistry()
    declare(reg)
    async with client_for(redis, prefix, reg) as client:
        by_name = await client.enqueue("report.build", args=["x"])
        explicit = await client.enqueue(
            "report.build", args=["x"], queue="other", priority="high", max_retries=4
        )
        many = await client.enqueue_many([{"name": "report.build", "args": ["y"]}])
        a = await client.status(by_name)
        b = await client.status(explicit)
        c = await client.status(many[0])
        assert a is not None and (a.queue, a.priority, a.max_retries) == ("reports", "low", 0)
        assert b is not None and (b.queue, b.priority, b.max_retries) == ("other", "high", 4)
        assert c is not None and (c.queue, c.priority) == ("reports", "low")


async def test_an_undeclared_name_gets_the_engine_defaults(redis: Redis, prefix: str) -> None:
    config = EngineConfig(prefix=prefix, queue_levels={"mail": ("urgent", "normal", "bulk")})
    async with Client(redis=redis, config=config, registry=TaskRegistry()) as client:
        tid = await client.enqueue("elsewhere.defined")
        mail = await client.enqueue("elsewhere.defined", queue="mail")
        info = await client.status(tid)
        assert info is not None and (info.queue, info.priority, info.max_retries) == (
            "default",
            "default",
            3,
        )
        # No priority given on a queue with levels of its own: its middle level.
        info = await client.status(mail)
        assert info is not None and info.priority == "normal"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ([], {}, "missing required argument(s): day"),
        (["a", "b"], {}, "takes 1 positional argument(s) but 2 were given"),
        (["a"], {"colour": 1}, "unexpected keyword argument 'colour'"),
        (["a"], {"day": "b"}, "multiple values for argument 'day'"),
    ],
)
async def test_arguments_that_do_not_fit_are_refused_before_any_write(
    redis: Redis, prefix: str, args: list[Any], kwargs: dict[str, Any], message: str
) -> None:
    reg = TaskRegistry()
    build_report = declare(reg)
    async with client_for(redis, prefix, reg) as client:
        with pytest.raises(TaskArgumentsError, match=re.escape(message)):
            await client.enqueue(build_report, args=args, kwargs=kwargs)
        with pytest.raises(TypeError):  # by name too, when this process knows the handler
            await client.enqueue("report.build", args=args, kwargs=kwargs)
        # keyword-only and `ctx` are understood: these fit.
        await client.enqueue(build_report, args=["a"], kwargs={"fmt": "csv"})
        await client.enqueue(build_report, kwargs={"day": "a"})
        stats = await queue_ops.queue_stats(client.broker, "reports")
        assert stats.pending == 2


async def test_an_undecorated_function_is_refused(redis: Redis, prefix: str) -> None:
    def plain() -> None: ...

    async with client_for(redis, prefix, TaskRegistry()) as client:
        with pytest.raises(TypeError, match="decorate it with @task"):
            await client.enqueue(plain)  # type: ignore[arg-type]


async def test_http_takes_declared_defaults_and_answers_422_for_bad_arguments(
    redis: Redis, prefix: str
) -> None:
    reg = TaskRegistry()
    declare(reg)
    broker = Broker(redis, EngineConfig(prefix=prefix), registry=reg)
    async with api_client(broker) as api:
        resp = await api.post(
            "/v1/tasks", data=orjson.dumps({"name": "report.build", "args": ["d"]})
        )
        assert resp.status == 201, await resp.text()
        info = await queue_ops.task_status(broker, (await resp.json())["id"])
        assert info is not None and (info.queue, info.priority, info.max_retries) == (
            "reports",
            "low",
            0,
        )
        resp = await api.post(
            "/v1/tasks/batch",
            json={"tasks": [{"name": "report.build", "args": ["d"], "queue": "q2"}]},
        )
        info = await queue_ops.task_status(broker, (await resp.json())["ids"][0])
        assert info is not None and (info.queue, info.priority) == ("q2", "low")
        resp = await api.post("/v1/tasks", json={"name": "report.build", "args": []})
        assert await error_of(resp) == (422, "invalid_arguments")
        resp = await api.post(
            "/v1/tasks/batch",
            json={"tasks": [{"name": "report.build", "args": ["ok"]}, {"name": "report.build"}]},
        )
        assert await error_of(resp) == (422, "invalid_arguments")
        assert "tasks[1]" in (await resp.json())["error"]["message"]
        # All or nothing: the good first task of the refused batch was not stored.
        assert (await queue_ops.queue_stats(broker, "reports")).pending == 1


async def test_declared_max_retries_zero_is_honoured_by_the_worker(
    redis: Redis, prefix: str
) -> None:
    reg = TaskRegistry()
    build_report = declare(reg)
    async with client_for(redis, prefix, reg) as client:
        pool = WorkerPool(
            client.broker,
            PoolSettings(queues=("reports",), concurrency=2, idle_block_s=0.05),
            registry=reg,
        )
        await pool.start()
        try:
            tid = await client.enqueue(build_report, args=["2026-11-30"])
            with pytest.raises(TaskDeadError) as err:
                await client.result(tid, timeout=10)
            assert err.value.info.attempts == 1  # tried once: max_retries=0, not the default 3
            assert err.value.info.state is TaskState.DEAD
        finally:
            await asyncio.wait_for(pool.stop(grace_s=1), 10)


async def test_taskspec_defaults_are_unset() -> None:
    spec = TaskSpec("x")
    assert (spec.queue, spec.priority, spec.max_retries, spec.timeout_s) == (None,) * 4


def test_signature_shapes() -> None:
    reg = TaskRegistry()

    @task(name="s.var", registry=reg)
    def var(a: int, *rest: int) -> None: ...

    @task(name="s.kwonly", registry=reg)
    def kwonly(a: int, *, b: int) -> None: ...

    @task(name="s.posonly", registry=reg)
    def posonly(a: int, /, b: int = 0) -> None: ...

    from engine.declared import check_arguments

    check_arguments(reg.get("s.var"), [1, 2, 3, 4], {})
    with pytest.raises(TaskArgumentsError, match="missing"):
        check_arguments(reg.get("s.var"), [], {})
    check_arguments(reg.get("s.kwonly"), [1], {"b": 2})
    with pytest.raises(TaskArgumentsError, match=r"missing required argument.*: b"):
        check_arguments(reg.get("s.kwonly"), [1], {})
    check_arguments(reg.get("s.posonly"), [1], {"b": 2})
    with pytest.raises(TaskArgumentsError, match="unexpected keyword argument 'a'"):
        check_arguments(reg.get("s.posonly"), [], {"a": 1})


def test_a_worker_without_queue_flags_serves_its_tasks_declared_queues() -> None:
    from engine.worker.settings import with_declared_queues
    from spool_console.cli import build_parser
    from spool_console.settings import resolve

    reg = TaskRegistry()
    declare(reg)  # queue="reports"

    @task(name="plain", registry=reg)
    def plain() -> None: ...

    implicit = resolve(build_parser().parse_args(["--no-ui"]), {})
    assert not implicit.queues_given
    assert with_declared_queues(implicit.pool_settings(), reg).queues == ("default", "reports")
    explicit = resolve(build_parser().parse_args(["--no-ui", "--queue", "a:3"]), {})
    assert explicit.queues_given
    widened = with_declared_queues(explicit.pool_settings(), reg)
    assert (widened.queues, widened.queue_weights) == (("a", "reports"), (3, 1))
    assert resolve(build_parser().parse_args([]), {"SPOOL_QUEUES": "x"}).queues_given
