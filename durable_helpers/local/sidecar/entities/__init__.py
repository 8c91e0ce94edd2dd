"""Durable entities in the local task hub (the engine's entity part).

* :mod:`.model`: per-entity scheduler state, its request queue and locks, the next batch (pure);
* :mod:`.rows`: an entity's rows in the task hub tables, in the provider's layout;
* :mod:`.orchestration`: entity traffic of orchestrations (EventSent / EventRaised);
* :mod:`.hub`: live entities and their work items (:class:`~.hub.EntityHub`, a work source);
* :mod:`.steps`: committing a step (answers, signals, orchestration starts, rows);
* :mod:`.client`: the client RPCs (SignalEntity, GetEntity, QueryEntities, CleanEntityStorage).

The engine reaches it in four places: the inbox routes ``@name@key`` messages to the hub, the
hub is the third work source, the planner calls :func:`~.orchestration.plan_entity_message`,
and the entity client RPCs are ``Engine`` methods over :mod:`.client`.
"""
