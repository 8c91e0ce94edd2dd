"""The Durable Functions management URLs (``HttpManagementPayload``) for one instance.

The shape follows the in-process extension (task-hub-storage-layout.md §6.1): base path
``{origin}/runtime/webhooks/durabletask``, instance path ``{base}/instances/{urlencoded id}``,
query suffix ``taskHub={hub}&connection={connection}`` (connection name ``Storage`` by default).

Example:
    >>> urls = management_urls("http://127.0.0.1:7071", "abc", hub="DurableFunctionsHub")
    >>> urls["statusQueryGetUri"]
    'http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/abc?taskHub=DurableFunctionsHub&connection=Storage'
"""

from __future__ import annotations

from urllib.parse import quote

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
DEFAULT_CONNECTION_NAME = "Storage"

#: The JSON keys of the payload, in the order the Functions host writes them.
PAYLOAD_KEYS = (
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "rewindPostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
)


def webhook_base(origin: str) -> str:
    """``origin`` (``http://host:port``) plus the webhook base path.

    Example:
        >>> webhook_base("http://127.0.0.1:7071/")
        'http://127.0.0.1:7071/runtime/webhooks/durabletask'
    """
    return origin.rstrip("/") + WEBHOOK_PATH


def management_urls(
    origin: str,
    instance_id: str,
    *,
    hub: str,
    connection: str = DEFAULT_CONNECTION_NAME,
) -> dict[str, str]:
    """The nine-key management payload for ``instance_id`` served at ``origin``.

    ``{eventName}`` and ``{text}`` stay as placeholders, exactly as the Functions host returns
    them; replace them before calling the URL.

    Example:
        >>> management_urls("http://h:1", "a b", hub="H")["sendEventPostUri"]
        'http://h:1/runtime/webhooks/durabletask/instances/a%20b/raiseEvent/{eventName}?taskHub=H&connection=Storage'
    """
    instance = f"{webhook_base(origin)}/instances/{quote(instance_id, safe='')}"
    query = f"taskHub={quote(hub, safe='')}&connection={quote(connection, safe='')}"
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{instance}?{query}",
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{instance}?{query}",
        "restartPostUri": f"{instance}/restart?{query}",
        "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
    }
