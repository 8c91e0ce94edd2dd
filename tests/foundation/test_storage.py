"""Connection handling: what users hand us becomes clients, and no key is ever shown."""

from __future__ import annotations

import base64

import pytest
from azure.core.credentials import AzureNamedKeyCredential

from durable_helpers.storage import (
    AZURITE_KEY,
    CONNECTION_ENV_VAR,
    StorageAccount,
    StorageConfigurationError,
    mask_secrets,
    resolve_connection,
)

# A made-up key ("secret" x 8, base64), built at run time so no key-shaped text sits in git.
FAKE_KEY = base64.b64encode(b"secret" * 8).decode()
REAL_LOOKING = (
    "DefaultEndpointsProtocol=https;AccountName=contoso;"
    f"AccountKey={FAKE_KEY};EndpointSuffix=core.windows.net"
)


def test_mask_secrets_hides_keys_and_sas_signatures() -> None:
    masked = mask_secrets(
        REAL_LOOKING + " https://x.blob.core.windows.net/c?sv=1&sig=abc%2Bdef&se=2"
    )
    assert "c2VjcmV0" not in masked
    assert "abc%2Bdef" not in masked
    assert "AccountKey=***" in masked and "sig=***" in masked
    assert "AccountName=contoso" in masked


def test_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONNECTION_ENV_VAR, raising=False)
    assert "devstoreaccount1" in resolve_connection(None)
    monkeypatch.setenv(CONNECTION_ENV_VAR, REAL_LOOKING)
    assert resolve_connection(None) == REAL_LOOKING
    assert "devstoreaccount1" in resolve_connection("UseDevelopmentStorage=true")
    assert resolve_connection("AccountName=x;AccountKey=y") == "AccountName=x;AccountKey=y"


def test_account_repr_and_str_never_show_the_key() -> None:
    account = StorageAccount.from_connection(REAL_LOOKING)
    assert account.name == "contoso"
    for text in (repr(account), str(account)):
        assert "c2VjcmV0" not in text
    emulator = StorageAccount.from_connection("UseDevelopmentStorage=true")
    assert emulator.is_emulator
    assert AZURITE_KEY not in repr(emulator)


def test_garbage_connection_string_says_what_to_do() -> None:
    with pytest.raises(StorageConfigurationError, match="connection string") as caught:
        StorageAccount.from_connection("not a connection string")
    assert "UseDevelopmentStorage=true" in str(caught.value)


def test_account_url_needs_a_credential() -> None:
    with pytest.raises(StorageConfigurationError, match="DefaultAzureCredential"):
        StorageAccount.from_connection("https://contoso.table.core.windows.net")


def test_account_url_with_credential_derives_all_three_services() -> None:
    credential = AzureNamedKeyCredential("contoso", "c2VjcmV0c2VjcmV0")
    account = StorageAccount.from_connection(
        "https://contoso.table.core.windows.net/", credential=credential
    )
    assert account.name == "contoso"
    assert account.blobs.url.startswith("https://contoso.blob.core.windows.net")
    assert account.queues.url.startswith("https://contoso.queue.core.windows.net")


def test_account_url_and_key_against_azurite(azurite, hub_name: str) -> None:
    """Keyless-style construction (URL + credential) reaches the same emulator."""
    table_port = azurite.ports[2]
    credential = AzureNamedKeyCredential("devstoreaccount1", AZURITE_KEY)
    account = StorageAccount.from_connection(
        f"http://127.0.0.1:{table_port}/devstoreaccount1", credential=credential
    )
    account.tables.create_table(hub_name)
    assert hub_name in [t.name for t in account.tables.list_tables()]
    account.tables.delete_table(hub_name)


def test_keys_are_case_insensitive_as_in_the_azure_sdk() -> None:
    lower = ";".join(
        f"{key.lower()}={value}"
        for key, value in (part.split("=", 1) for part in REAL_LOOKING.split(";"))
    )
    account = StorageAccount.from_connection(lower)
    assert account.name == "contoso"
    assert account.tables.url.startswith("https://contoso.table.core.windows.net")


def test_a_key_that_is_not_base64_says_so_without_showing_it() -> None:
    broken = REAL_LOOKING.replace(FAKE_KEY, FAKE_KEY[:-3] + "!x")
    with pytest.raises(StorageConfigurationError, match="not base64") as caught:
        StorageAccount.from_connection(broken)
    assert FAKE_KEY[:10] not in str(caught.value)


def test_sas_for_some_services_leaves_the_others_out() -> None:
    from durable_helpers import TaskHub

    sas = (
        "TableEndpoint=https://contoso.table.core.windows.net/;"
        "BlobEndpoint=https://contoso.blob.core.windows.net/;"
        "SharedAccessSignature=sv=2022-11-02&ss=bt&srt=sco&sp=rl&sig=c2lnbmF0dXJl"
    )
    account = StorageAccount.from_connection(sas)
    assert account.tables is not None and account.blobs is not None
    assert account.queues is None
    with pytest.raises(StorageConfigurationError, match="has no QueueEndpoint") as caught:
        TaskHub(sas, hub="SasHub").queues()
    assert "c2lnbmF0dXJl" not in str(caught.value)


def test_an_empty_connection_string_is_an_error_not_azurite() -> None:
    for empty in ("", "   "):
        with pytest.raises(StorageConfigurationError, match="empty"):
            StorageAccount.from_connection(empty)
