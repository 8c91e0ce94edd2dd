"""Durable entities in the local task hub (the engine's entity part).

* :mod:`.model`: per-entity scheduler state, its request queue and locks, the next batch (pure);
* :mod:`.rows`: an entity's rows in the task hub tables, in the provider's layout;
* :mod:`.orchestration`: entity traffic of orchestrations (EventSent / EventRaised);
* :mod:`.hub`: live entities, their work items and durable steps (:class:`EntityHub`);
* :mod:`.client`: the client RPCs (SignalEntity, GetEntity, QueryEntities, CleanEntityStorage).

The engine talks to this package through :class:`~.hub.EntityHost` (what the entities need
from it) and :class:`~.hub.EntityHub` (what it calls).
"""
