"""The route table: every route once, with what the OpenAPI document says about it.

The app registers exactly these routes and `engine.http.openapi` documents exactly these, from
the request and response types named here, so the two cannot drift apart. To add a route:
declare its types in `engine.http.contract`, write the handler, add one `Route` below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from engine.http import contract as c
from engine.http import handlers_dead, handlers_ops, handlers_queues, handlers_tasks

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One route: how it is served and how it is documented.

    `reply` is the 2xx body type (None: `content_type` text, such as Prometheus' exposition);
    `errors` are the statuses beyond 401/503, which every route may answer.
    """

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    reply: type[c.Reply] | None
    ok_status: int = 200
    body: type[c.Body] | None = None
    query: type[c.Query] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False
    content_type: str = "application/json"


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/tasks", handlers_tasks.post_task, "enqueueTask", "Enqueue one task",
          c.Created, 201, body=c.TaskRequest, errors=(400, 413, 422)),
    Route("POST", "/v1/tasks/batch", handlers_tasks.post_batch, "enqueueBatch",
          "Enqueue tasks, all or nothing", c.CreatedBatch, 201, body=c.BatchRequest,
          errors=(400, 413, 422)),
    Route("GET", "/v1/tasks/{id}", handlers_tasks.get_task, "getTask",
          "One task's state and record", c.TaskView, query=c.TaskWaitQuery, errors=(400, 404)),
    Route("POST", "/v1/tasks/{id}/cancel", handlers_tasks.cancel_task, "cancelTask",
          "Cancel a task (pending, scheduled or running)", c.CancelReply, query=c.TaskQuery,
          errors=(400, 404)),
    Route("GET", "/v1/schedules", handlers_tasks.list_schedules, "listSchedules",
          "Periodic tasks with their last and next run", c.ScheduleList),
    Route("GET", "/v1/queues", handlers_queues.list_queues, "listQueues",
          "Every queue with depth per level", c.QueueList),
    Route("POST", "/v1/queues/{queue}/pause", handlers_queues.pause_queue, "pauseQueue",
          "Stop handing out tasks of a queue", c.QueueState, errors=(400,)),
    Route("POST", "/v1/queues/{queue}/resume", handlers_queues.resume_queue, "resumeQueue",
          "Hand out tasks of a queue again", c.QueueState, errors=(400,)),
    Route("GET", "/v1/queues/{queue}/diagnosis", handlers_queues.queue_diagnosis,
          "diagnoseQueue", "Why a queue is not moving, from facts", c.QueueDiagnosis,
          errors=(400,)),
    Route("GET", "/v1/dead", handlers_dead.list_dead, "listDead", "Dead letters, newest first",
          c.DeadPage, query=c.DeadListQuery, errors=(400,)),
    Route("GET", "/v1/dead/groups", handlers_dead.dead_groups, "deadGroups",
          "Dead letters grouped by error", c.DeadGroups, query=c.DeadFilterQuery, errors=(400,)),
    Route("POST", "/v1/dead/requeue", handlers_dead.requeue, "requeueDead",
          "Move dead letters back to pending", c.Requeued, body=c.RequeueRequest,
          errors=(400, 413)),
    Route("DELETE", "/v1/dead/{id}", handlers_dead.delete_dead, "deleteDead",
          "Delete a dead letter (restorable until its window ends)", c.Deleted,
          query=c.TaskQuery, errors=(400, 404)),
    Route("POST", "/v1/dead/restore", handlers_dead.restore, "restoreDead",
          "Restore the dead letters of a delete", c.Restored, body=c.RestoreRequest,
          errors=(400, 404, 410, 413)),
    Route("GET", "/v1/audit", handlers_ops.audit_log, "auditLog",
          "Operator actions (console, CLI, API), newest first", c.AuditLog, query=c.AuditQuery,
          errors=(400,)),
    Route("GET", "/v1/workers", handlers_ops.list_workers, "listWorkers",
          "Live worker processes", c.Workers),
    Route("GET", "/v1/stats", handlers_ops.get_stats, "getStats", "Fleet metrics summary",
          c.Stats),
    Route("GET", "/metrics", handlers_ops.get_metrics, "getMetrics",
          "Prometheus text exposition", None, content_type="text/plain"),
    Route("GET", "/healthz", handlers_ops.healthz, "healthz",
          "Liveness: the process serves requests", c.Status, public=True),
    Route("GET", "/readyz", handlers_ops.readyz, "readyz", "Readiness: Redis answers", c.Status),
    Route("GET", "/v1/openapi.json", handlers_ops.openapi, "openapi", "This document", None),
)
