"""Every request and response body of the HTTP API, declared once as msgspec Structs:
`requests` (bodies and query strings, with their limits) and `replies` (responses).

The server decodes request bodies and query strings straight into these types (msgspec checks
types, ranges and unknown fields in C) and the OpenAPI document is generated from them
(`engine.http.openapi`), so what is published is what is enforced. Names, queues, priorities
and ids are checked by the engine itself, which names the offending value.

To add a field: add it to its Struct (with its `Meta` limits) and read it where the request is
turned into an engine call. To add a route: declare its types in `requests`/`replies`, export
them here, and add one `Route` in `routes.py`.
"""

from __future__ import annotations

from engine.http.contract.replies import (
    CancelReply,
    Created,
    CreatedBatch,
    DeadGroups,
    DeadGroupView,
    DeadPage,
    DeadView,
    Deleted,
    DiagnosisReason,
    ErrorDetail,
    ErrorReply,
    FlowView,
    QueueDiagnosis,
    QueueList,
    QueueState,
    QueueView,
    Reply,
    Requeued,
    ScheduleList,
    ScheduleView,
    Stats,
    Status,
    TaskStateName,
    TaskView,
    Workers,
    encode,
    queue_view,
)
from engine.http.contract.requests import (
    MAX_DELAY_S,
    MAX_ETA_S,
    MAX_PAGE,
    MAX_RETRIES,
    MAX_TIMEOUT_S,
    BatchRequest,
    Body,
    DeadFilterQuery,
    DeadListQuery,
    Delay,
    Eta,
    PageSize,
    Query,
    RequeueRequest,
    Retries,
    TaskQuery,
    TaskRequest,
    TaskWaitQuery,
    Timeout,
)

__all__ = [
    "MAX_DELAY_S",
    "MAX_ETA_S",
    "MAX_PAGE",
    "MAX_RETRIES",
    "MAX_TIMEOUT_S",
    "BatchRequest",
    "Body",
    "CancelReply",
    "Created",
    "CreatedBatch",
    "DeadFilterQuery",
    "DeadGroupView",
    "DeadGroups",
    "DeadListQuery",
    "DeadPage",
    "DeadView",
    "Delay",
    "Deleted",
    "DiagnosisReason",
    "ErrorDetail",
    "ErrorReply",
    "Eta",
    "FlowView",
    "PageSize",
    "Query",
    "QueueDiagnosis",
    "QueueList",
    "QueueState",
    "QueueView",
    "Reply",
    "RequeueRequest",
    "Requeued",
    "Retries",
    "ScheduleList",
    "ScheduleView",
    "Stats",
    "Status",
    "TaskQuery",
    "TaskRequest",
    "TaskStateName",
    "TaskView",
    "TaskWaitQuery",
    "Timeout",
    "Workers",
    "encode",
    "queue_view",
]
