"""The demo entities of the sample worker: a counter, bank accounts, and a locked transfer.

| Function      | Kind                 | Operations / input         | Result
|---------------|----------------------|----------------------------|------------------------------
| `Counter`     | entity (function)    | `add` n (default 1),       | `get`: the value (0 when
|               | `@counter@<key>`     | `reset`, `get`, `delete`   | new); `add`: the new value
| `BankAccount` | entity (class)       | `deposit` n, `withdraw` n, | the new balance; overdrawing
|               | `@bankaccount@<key>` | `balance`, `delete`        | raises `ValueError:
|               |                      |                            | Insufficient funds`
| `Transfer`    | orchestration        | `{"from": "alice", "to":   | `{"transferred": true,
|               |                      | "bob", "amount": 30}`      | "from_balance": 70,
|               |                      |                            | "to_balance": 30}` (from 100
|               |                      |                            | and 0); false when short

``Transfer`` is a critical section: it locks both accounts (``lock_entities``), so no other
operation on either account runs between reading the balance and moving the money.

Example:
    >>> [getattr(f, "__name__", "") for f in ENTITIES]
    ['Counter', 'BankAccount']
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from durabletask import entities, task

Gen = Generator[task.Task[Any], Any, Any]


def Counter(ctx: entities.EntityContext, amount: Any) -> int | None:
    """A counter: ``add`` (by ``amount``, default 1), ``reset``, ``get``, ``delete``.

    Example:
        >>> from durabletask.entities import EntityInstanceId
        >>> client.signal_entity(EntityInstanceId("Counter", "c1"), "add", 5)  # doctest: +SKIP
    """
    op = ctx.operation
    if op == "delete":
        ctx.set_state(None)
        return None
    if op == "reset":
        ctx.set_state(0)
        return 0
    value = ctx.get_state(int, 0)
    if op == "get":
        return value
    if op == "add":
        value += 1 if amount is None else int(amount)
        ctx.set_state(value)
        return value
    raise ValueError(f"Counter has no operation {op!r} (use add, reset, get or delete)")


class BankAccount(entities.DurableEntity):
    """An account balance: ``deposit``, ``withdraw`` (refuses to overdraw), ``balance``.

    Example:
        >>> from durabletask.entities import EntityInstanceId
        >>> alice = EntityInstanceId("BankAccount", "alice")
        >>> client.signal_entity(alice, "deposit", 100)  # doctest: +SKIP
    """

    def deposit(self, amount: float) -> float:
        if amount is None or amount <= 0:
            raise ValueError(f"A deposit is a positive amount, not {amount!r}")
        balance = self.get_state(float, 0.0) + amount
        self.set_state(balance)
        return balance

    def withdraw(self, amount: float) -> float:
        balance = self.get_state(float, 0.0)
        if amount is None or amount <= 0:
            raise ValueError(f"A withdrawal is a positive amount, not {amount!r}")
        if amount > balance:
            raise ValueError(f"Insufficient funds: balance {balance}, withdrawal {amount}")
        self.set_state(balance - amount)
        return balance - amount

    def balance(self, _: Any = None) -> float:
        return self.get_state(float, 0.0)


def Transfer(ctx: task.OrchestrationContext, order: Any) -> Gen:
    """Move ``amount`` between two ``BankAccount`` keys inside a critical section.

    Example:
        >>> client.schedule_new_orchestration(  # doctest: +SKIP
        ...     "Transfer", input={"from": "alice", "to": "bob", "amount": 30})
    """
    order = order if isinstance(order, dict) else {}
    source = entities.EntityInstanceId("BankAccount", str(order.get("from", "alice")))
    target = entities.EntityInstanceId("BankAccount", str(order.get("to", "bob")))
    amount = order.get("amount", 30)
    with (yield ctx.lock_entities([source, target])):
        available = yield ctx.call_entity(source, "balance")
        if available < amount:
            receiving = yield ctx.call_entity(target, "balance")
            return {"transferred": False, "from_balance": available, "to_balance": receiving}
        left = yield ctx.call_entity(source, "withdraw", amount)
        received = yield ctx.call_entity(target, "deposit", amount)
    return {"transferred": True, "from_balance": left, "to_balance": received}


ENTITIES = (Counter, BankAccount)
ENTITY_ORCHESTRATORS = (Transfer,)
