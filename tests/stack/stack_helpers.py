"""Bounded polling helpers for the stack tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def poll_status(
    client: httpx.Client,
    url: str,
    until: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
    timeout: float = 30.0,
) -> httpx.Response:
    """GET ``url`` until ``until(response)`` holds; fail with the last response after timeout."""
    deadline = time.monotonic() + timeout
    response = client.get(url)
    while not until(response):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{url} never reached the expected state in {timeout} s; last answer "
                f"{response.status_code} {response.text[:500]}"
            )
        time.sleep(0.1)
        response = client.get(url)
    return response


def status_is(*names: str) -> Callable[[httpx.Response], bool]:
    """A predicate: the status JSON's runtimeStatus is one of ``names``."""

    def check(response: httpx.Response) -> bool:
        return response.status_code in (200, 202) and response.json()["runtimeStatus"] in names

    return check


def fill(url: str, **values: str) -> str:
    """Replace ``{eventName}``/``{text}`` placeholders in a management URL."""
    for key, value in values.items():
        url = url.replace("{" + key + "}", value)
    return url
