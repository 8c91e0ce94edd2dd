"""The local task hub: Azurite for storage plus a Durable Task gRPC sidecar that writes the
same tables, in the same layout, that Durable Functions writes in Azure."""
