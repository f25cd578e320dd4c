"""One configuration for the whole app; every capability is a feature flag here.

Values come from four layers, later ones winning: the defaults below, an
optional TOML or YAML file (``--config FILE`` or ``X0_CONFIG``), environment
variables ``X0_<SECTION>__<FIELD>`` (``X0_MESH__BYZANTINE=false``) and CLI
overrides (``--set mesh.byzantine=false``).  :func:`load_settings` merges them
and :func:`describe_settings` tells which layer each value came from.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from x0tta6bl4.errors import ConfigError

__all__ = [
    "EbpfSettings",
    "IdentitySettings",
    "LogSettings",
    "MeshSettings",
    "MetricsSettings",
    "MlSettings",
    "PaymentsSettings",
    "RaySettings",
    "SettingSource",
    "Settings",
    "StorefrontSettings",
    "SupervisorSettings",
    "describe_settings",
    "load_settings",
    "parse_overrides",
]

ENV_PREFIX = "X0_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_ENV = "X0_CONFIG"


def default_data_dir() -> Path:
    """Where state (SQLite files, checkpoints, keys) lives when not configured."""
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "x0tta6bl4"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LogSettings(_Section):
    format: Literal["auto", "json", "console"] = "auto"
    """``auto`` prints readable lines on a terminal and JSON otherwise."""
    level: Literal["debug", "info", "warning", "error"] = "info"


class RaySettings(_Section):
    address: str | None = None
    """Address of a running cluster (``ray://host:10001`` or ``auto``); None starts a local Ray."""
    namespace: str = "x0tta6bl4"
    dashboard: bool = True
    dashboard_port: int = Field(8265, ge=1, le=65535)
    num_cpus: int | None = Field(None, ge=1)
    """CPUs a local Ray may use; None lets Ray count them."""


class MetricsSettings(_Section):
    enabled: bool = True
    port: int = Field(9464, ge=0, le=65535)
    """Prometheus exporter port on the driver; 0 picks a free port."""


class MeshSettings(_Section):
    enabled: bool = True
    backend: Literal["auto", "netns", "host", "sim"] = "auto"
    """``auto``: network namespaces when root, the in-process simulator otherwise."""
    topology: Literal["ring", "grid", "ring_chords", "waxman"] = "ring_chords"
    nodes: int = Field(6, ge=2, le=100_000)
    seed: int = 1
    probe_interval_s: float = Field(0.02, gt=0, le=60)
    miss_threshold: int = Field(3, ge=1, le=100)
    """Missed probes in a row after which a link counts as down."""
    byzantine: bool = True
    """Sign beacons and advertisements; drop forged, replayed and unconfirmed ones."""
    pqc_beacons: bool = False
    """Sign with ML-DSA in addition to Ed25519."""
    hello_macs: bool = True
    """Authenticate hellos with per-link keys (signed X25519 handshakes, then BLAKE2b MACs);
    false signs every hello like an LSA (about 6x the CPU; the benchmark's baseline)."""
    failover: bool = True
    """Keep kernel routes when a MeshNode actor restarts, and adopt them."""
    fib_backups: bool = True
    """Install each route's loop-free alternate as a dearer second kernel route, so the
    kernel itself fails over on carrier loss (off: the node's repair write does it)."""
    hold_down_probes: int = Field(3, ge=1, le=1000)
    """Good probes in a row a link needs before it comes (back) up; doubled per recent flap."""
    ewma_weight: float = Field(0.2, gt=0, le=1)
    """Weight of the newest sample in the RTT and delivery-ratio moving averages."""
    lsa_refresh_s: float = Field(10.0, gt=0, le=3600)
    """Interval at which a node re-floods its own link-state advertisement unchanged."""
    lsa_max_age_s: float = Field(40.0, gt=0, le=4 * 3600)
    """An advertisement not refreshed for this long is purged (keep > 2 x lsa_refresh_s)."""
    replay_window_s: float = Field(30.0, gt=0, le=3600)
    """How far a signed message's timestamp may differ from the receiver's clock."""
    max_message_bytes: int = Field(8192, ge=512, le=65_000)
    """Larger mesh datagrams are dropped unread and counted as oversized."""
    spf_hold_s: float = Field(0.01, ge=0, le=60)
    """Least time between two SPF runs for good news (new or cheaper links); bad news and
    local repair run SPF at once."""
    repair_hold_s: float = Field(0.5, ge=0, le=60)
    """How long a loop-free alternate installed by local repair stays before SPF may replace it."""
    stale_route_hold_s: float = Field(30.0, ge=0, le=600)
    """A route SPF no longer (or not yet, after a restart) confirms stays this long, so a
    node whose actor restarts (Ray took up to 14 s on a loaded host) keeps being reached;
    carrier loss removes it at once."""
    byzantine_grace_s: float = Field(2.0, gt=0, le=600)
    """A node whose advertised links stay unconfirmed this long is flagged, not used as transit."""
    route_protocol: int = Field(211, ge=5, le=255)
    """Kernel route protocol number of our routes (``ip route show proto 211``)."""
    udp_port: int = Field(6211, ge=1, le=65534)
    """UDP port of hellos on every mesh link; advertisements use the next port."""
    resync_interval_s: float = Field(1.0, gt=0, le=600)
    """How often a node compares the kernel's routes with its own and repairs drift."""
    telemetry_interval_s: float = Field(1.0, gt=0, le=3600)
    """How often a MeshNode ships a telemetry batch and updates its metrics."""
    consumer: str = "supervisor"
    """Named actor whose ``ingest(refs)`` receives telemetry batch refs; absent: batches kept."""
    start_timeout_s: float = Field(60.0, gt=0, le=600)
    """How long bringing up the MeshNode actors may take before that is an error."""
    topology_file: Path | None = None
    """With ``backend=host``: the JSON file mapping mesh nodes to Ray nodes, interfaces and
    addresses (format in docs/mesh.md)."""
    realtime_priority: int = Field(10, ge=0, le=99)
    """SCHED_RR priority of a MeshNode's loop and netlink threads (0: normal scheduling), so
    hellos leave on time on a busy host; needs root or CAP_SYS_NICE."""


class SupervisorSettings(_Section):
    enabled: bool = True
    interval_s: float = Field(1.0, gt=0, le=3600)
    """One MAPE-K tick (and one telemetry window) per interval."""
    max_queued_batches: int = Field(256, ge=1)
    """Telemetry batch refs waiting to be read; beyond it batches are dropped and counted."""
    db_path: Path | None = None
    """Knowledge (SQLite); None: ``<data_dir>/supervisor/knowledge.sqlite3``."""
    z_threshold: float = Field(6.0, gt=0)
    """Robust z-score (against a metric's own baseline) from which a value is a symptom."""
    baseline_alpha: float = Field(0.1, gt=0, le=1)
    """Weight of the newest normal window in a metric's baseline."""
    warmup_windows: int = Field(5, ge=1)
    """Windows a baseline learns before it judges."""
    stale_after_s: float = Field(5.0, gt=0)
    """A node whose telemetry stopped this long is down."""
    verify_after_s: float = Field(2.0, ge=0)
    """Wait this long after an action before checking its outcome."""
    heal_timeout_s: float = Field(30.0, gt=0)
    """An action whose outcome is still bad after this long was ineffective."""
    max_attempts: int = Field(3, ge=1, le=20)
    """Actions tried per incident before it is escalated to an operator."""
    slow_tick_s: float = Field(1.0, gt=0)
    """A MAPE-K tick slower than this is logged as a warning."""
    cost_factor: float = Field(10.0, gt=1)
    """A raise-cost action multiplies the link's configured cost by this."""
    disruption_weight: float = Field(0.1, ge=0)
    """How much a moved route counts against a restored one when plans are scored."""
    analyzer: Literal["auto", "statistical", "trainer"] = "auto"
    """``auto``: the Trainer's GraphSAGE model when a ``trainer`` actor runs, else statistics."""
    twin_max_nodes: int = Field(4000, ge=2)
    """Largest mesh the digital twin mirrors (memory grows with nodes squared)."""
    baseline_save_s: float = Field(60.0, gt=0)
    """How often baselines are written to Knowledge (a restart loses at most this much)."""
    niceness: int = Field(-10, ge=-20, le=19)
    """Niceness of the Supervisor's process (every thread): on a busy host the control loop
    gets the CPU before bulk work.  Below 0 needs root (CAP_SYS_NICE); without it, unchanged."""
    job_runners: int = Field(2, ge=1)
    """Processes that run the Supervisor's blocking jobs (training, router starts) at once."""


class EbpfSettings(_Section):
    enabled: bool = True
    """Load eBPF programs where bcc and privileges allow; ``doctor`` says why not."""
    interval_s: float = Field(1.0, ge=0.1, le=60)
    """How often each agent reads the maps and ships a batch (0.1 s at the fastest)."""
    programs: list[Literal["xdp", "tc", "trace"]] = ["tc", "trace"]
    """Programs to load (``--set ebpf.programs=xdp,tc,trace``): TC and XDP interface counters,
    drop and retransmit tracepoints.  XDP is opt-in: TC counts the same frames, and an XDP
    program is one per interface, which other software may want."""
    xdp_mode: Literal["auto", "hw", "drv", "skb"] = "auto"
    """``auto`` tries offload (hw), then native driver (drv), then generic (skb) mode; on a veth
    it skips drv, which turns off the peer's GSO (see docs/ebpf.md)."""
    interfaces: list[str] = Field(default_factory=list)
    """Host-namespace interfaces to attach to; none by default: no real NIC is touched unasked."""
    netns_patterns: list[str] = Field(default_factory=lambda: ["x0-*"])
    """Namespaces (glob) whose interfaces, except lo, get the programs; ``x0-*`` are the mesh's."""
    rescan_interval_s: float = Field(5.0, gt=0, le=3600)
    """How often agents look for new namespaces and interfaces, and retry ones that were down."""
    state_dir: Path = Path("/run/x0tta6bl4/ebpf")
    """Attachments are recorded here, so programs of a crashed agent are removed at start-up."""
    consumer: str = "supervisor"
    """Named actor whose ``ingest(refs)`` receives the batch refs; when absent they are only kept
    as the latest batches (for ``ebpf top``)."""
    max_inflight_batches: int = Field(4, ge=1, le=1024)
    """Deliveries to the consumer that may be pending; beyond it batches are dropped and counted."""
    start_timeout_s: float = Field(60.0, gt=0, le=600)
    """How long an agent may take to start on its node before that is an error (never pending)."""
    max_map_entries: int = Field(4096, ge=64, le=1_048_576)
    """Entries of each counter map (interfaces x hooks x protocols, drop keys)."""
    unchanged_resend_s: float = Field(10.0, ge=0, le=3600)
    """A batch kind in which no counter moved is shipped again only this often (0: every
    interval); each batch is an object-store put, the agent's largest cost."""

    @field_validator("programs", "interfaces", "netns_patterns", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """``--set ebpf.interfaces=eth0,eth1`` arrives as one string."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class MlSettings(_Section):
    enabled: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` trains on a GPU when the Trainer actor was given one."""
    torch_threads: int = Field(1, ge=0, le=256)
    """Intra-op threads of torch in the Trainer and the CLI; 0 lets torch choose."""
    models_dir: Path | None = None
    """Model registry (checkpoints, ``current``); None: ``<data_dir>/ml/models``."""
    train_cases: int = Field(900, ge=10)
    """Twin cases a full training run generates."""
    quick_cases: int = Field(400, ge=10)
    """Twin cases a ``--quick`` training run generates."""
    epochs: int = Field(30, ge=1, le=1000)
    quick_epochs: int = Field(15, ge=1, le=1000)
    eval_cases: int = Field(60, ge=0)
    """Held-out cases scored after training; their AC@1 is stored in the registry."""
    seed: int = 0
    """Seed of generated training data and of training."""
    top_k: int = Field(3, ge=1, le=100)
    """Root causes reported (with explanations) per analysis."""
    anomaly_threshold: float = Field(0.5, gt=0, lt=1)
    """Anomaly score (0..1) above which an entity counts as anomalous."""
    explain_steps: int = Field(32, ge=2, le=512)
    """Integrated-gradients steps per explanation."""
    trainer_num_cpus: float = Field(1.0, ge=0, le=256)
    """CPUs the Trainer actor reserves (it also asks for one GPU where the cluster has one)."""


class PaymentsSettings(_Section):
    enabled: bool = False
    """Run the Ledger and PaymentVerifier actors that verify payments on-chain."""
    db_path: Path | None = None
    """SQLite file of orders and ledger; None puts ``payments.sqlite`` in ``data_dir``."""
    tron_network: Literal["mainnet", "shasta", "nile"] = "mainnet"
    ton_network: Literal["mainnet", "testnet"] = "mainnet"
    trongrid_url: str = ""
    """TronGrid base URL; empty picks the one of ``tron_network``."""
    toncenter_url: str = ""
    """toncenter base URL (``/api/v2`` and ``/api/v3`` below it); empty picks ``ton_network``'s."""
    trongrid_api_key: SecretStr = SecretStr("")
    toncenter_api_key: SecretStr = SecretStr("")
    tron_addresses: list[str] = Field(default_factory=list)
    """Receiving TRON addresses (base58); USDT-TRC20 is offered when one is set."""
    ton_addresses: list[str] = Field(default_factory=list)
    """Receiving TON wallets (any form); TON and USDT on TON are offered when one is set."""
    usdt_trc20_contract: str = ""
    """TRC20 USDT; empty picks the network's (mainnet: TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t)."""
    usdt_ton_master: str = ""
    """USDT jetton master; empty picks the network's (mainnet EQCxE6mU...Id_sDs)."""
    expiry_min: float = Field(15.0, gt=0, le=7 * 24 * 60)
    """Minutes an invoice stays payable."""
    late_window_min: float = Field(24 * 60.0, ge=0)
    """Minutes after expiry in which a payment still matches its order (kept as ``late``)."""
    unique_offset_max: int = Field(9999, ge=1, le=10**6)
    """Largest offset in base units added to a TRC20 price to make the amount unique."""
    unique_offset_step: int = Field(10, ge=1, le=10**5)
    """Open TRC20 amounts on one address differ by at least this: a payment off by less
    pays no other buyer's order."""
    tron_confirmations: int = Field(19, ge=0, le=1000)
    """Blocks on top of a TRC20 transfer before it counts (19: solidified)."""
    poll_interval_s: float = Field(3.0, gt=0, le=600)
    """Poll interval of a stream with open orders (TRON makes a block every 3 s)."""
    idle_poll_interval_s: float = Field(30.0, gt=0, le=3600)
    """Poll interval of a stream without open orders."""
    backoff_max_s: float = Field(120.0, gt=0, le=3600)
    """Longest wait after repeated errors or rate limits (exponential, with jitter)."""
    http_timeout_s: float = Field(10.0, gt=0, le=120)
    verifiers: int = Field(2, ge=1, le=64)
    """PaymentVerifier actors; streams (chain, address) are leased so none is polled twice."""


class StorefrontSettings(_Section):
    enabled: bool = False
    bot_token: SecretStr = SecretStr("")
    admin_ids: list[int] = Field(default_factory=list)
    """Telegram user ids of the owners: /stats, sale and suspicious-payment notices."""
    api_base_url: str = "https://api.telegram.org"
    """Bot API server (a local Bot API server, or a fake one in tests)."""
    products_file: Path | None = None
    """TOML catalog of plans; None uses the one shipped in x0tta6bl4/storefront/products.toml."""
    currencies: list[Literal["usdt_trc20", "ton", "usdt_ton"]] = Field(
        ["usdt_trc20", "ton", "usdt_ton"], min_length=1
    )
    """Currencies offered to buyers, in button order."""
    support_contact: str = ""
    """Shown by /support (e.g. @shop_support or an e-mail address)."""
    state_db: Path | None = None
    """SQLite file for FSM and invoice state; None: <data_dir>/storefront/bot.sqlite3."""
    join_key_file: Path | None = None
    """Ed25519 key signing join credentials; None: <data_dir>/storefront/join_key.pem."""
    check_cooldown_s: float = Field(10.0, ge=0, le=3600)
    """Minimum time between two chain checks of one order from the "Check payment" button."""
    user_rate_per_min: int = Field(30, ge=1, le=10_000)
    """Updates per minute one user may send before being asked to slow down."""
    user_burst: int = Field(10, ge=1, le=10_000)
    """Updates one user may send at once before the per-minute rate applies."""
    countdown_interval_s: float = Field(60.0, ge=1, le=3600)
    """How often open invoices are edited to show the time left."""
    reconcile_interval_s: float = Field(30.0, ge=0.1, le=3600)
    """How often open invoices are compared with the ledger (catches missed events)."""
    polling_timeout_s: int = Field(25, ge=0, le=50)
    """Long-polling wait of getUpdates."""
    api_retries: int = Field(5, ge=0, le=20)
    """Retries of a Bot API call after 429 (retry_after), 5xx or network errors."""
    api_backoff_max_s: float = Field(30.0, gt=0, le=600)
    """Longest wait between two retries of a Bot API call."""
    webhook_url: str = ""
    """Public HTTPS URL for Telegram to post updates to; empty uses long polling."""
    webhook_host: str = "127.0.0.1"
    """Address the webhook server listens on (behind a TLS-terminating proxy)."""
    webhook_port: int = Field(8443, ge=0, le=65535)
    """Port the webhook server listens on; 0 picks a free one."""
    webhook_secret: SecretStr = SecretStr("")
    """Secret Telegram echoes in X-Telegram-Bot-Api-Secret-Token; required with a webhook."""


class IdentitySettings(_Section):
    spiffe: bool = False
    """Fetch and renew SVIDs from the SPIFFE Workload API."""


class Settings(BaseSettings):
    """The effective configuration of one x0tta6bl4 process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        validate_assignment=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    log: LogSettings = Field(default_factory=LogSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    mesh: MeshSettings = Field(default_factory=MeshSettings)
    supervisor: SupervisorSettings = Field(default_factory=SupervisorSettings)
    ebpf: EbpfSettings = Field(default_factory=EbpfSettings)
    ml: MlSettings = Field(default_factory=MlSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    storefront: StorefrontSettings = Field(default_factory=StorefrontSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


SettingSource = Literal["default", "file", "env", "cli"]
_LAYERS_BY_PRECEDENCE: tuple[SettingSource, ...] = ("cli", "env", "file")


@dataclass(frozen=True)
class SettingValue:
    """One leaf of the effective configuration, for ``config show``."""

    key: str
    value: Any
    source: SettingSource
    secret: bool


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["mesh.nodes=8", ...]`` into a nested dict (values stay strings)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {pair!r} is not of the form key=value",
                fix="write it like --set mesh.nodes=8",
            )
        _set_path(result, key.strip().split("."), _parse_value(key, value))
    return result


def _parse_value(key: str, value: str) -> Any:
    """Lists and tables are written as JSON (``--set storefront.admin_ids=[1,2]``);
    scalars stay strings for pydantic to validate against the field's type."""
    if not value.lstrip().startswith(("[", "{")):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"override {key}={value} is not valid JSON: {exc.msg}",
            fix=f'write lists as JSON, e.g. --set {key}=["a","b"]',
        ) from exc


def load_settings(
    config_file: Path | str | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Merge defaults, file, environment and overrides into validated settings."""
    layers = _read_layers(config_file, overrides or {})
    merged: dict[str, Any] = {}
    for name in ("file", "env", "cli"):
        _deep_merge(merged, layers[name])
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise _config_error(exc) from exc


def describe_settings(
    config_file: Path | str | None = None, overrides: dict[str, Any] | None = None
) -> list[SettingValue]:
    """Every leaf setting with its effective value and the layer it came from."""
    layers = _read_layers(config_file, overrides or {})
    settings = load_settings(config_file, overrides)
    rows = []
    for key, value in _flatten(settings):
        path = key.split(".")
        source: SettingSource = "default"
        for name in _LAYERS_BY_PRECEDENCE:
            if _has_path(layers[name], path):
                source = name
                break
        secret = isinstance(value, SecretStr)
        shown = (
            ("***" if value.get_secret_value() else "") if isinstance(value, SecretStr) else value
        )
        rows.append(SettingValue(key, shown, source, secret))
    return rows


def _read_layers(config_file: Path | str | None, cli: dict[str, Any]) -> dict[str, dict[str, Any]]:
    path = config_file or os.environ.get(CONFIG_FILE_ENV) or None
    env = EnvSettingsSource(
        Settings, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER
    )()
    return {"file": _read_file(Path(path)) if path else {}, "env": env, "cli": cli}


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist",
            fix=f"create it, or unset {CONFIG_FILE_ENV} / drop --config",
        )
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(
                f"config file {path} must end in .toml, .yaml or .yml",
                fix="rename it to say which format it is in",
            )
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}", fix="fix its syntax") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of sections", fix="see README")
    return data


def _config_error(exc: ValidationError) -> ConfigError:
    problems = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        env_name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p) for p in err["loc"]).upper()
        got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        problems.append(f"{key}: {err['msg']}{got}")
        fix_hint = f"correct `{key}` in the config file, {env_name}, or --set {key}=..."
        if err["type"] == "extra_forbidden":
            fix_hint = f"`{key}` is not a setting; remove it (see `x0tta6bl4 config show`)"
    return ConfigError(
        "invalid configuration: " + "; ".join(problems),
        fix=fix_hint if len(problems) == 1 else "correct each setting named above",
        keys=[".".join(str(p) for p in e["loc"]) for e in exc.errors()],
    )


def _flatten(model: BaseModel, prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            rows.extend(_flatten(value, key + "."))
        else:
            rows.append((key, value))
    return rows


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _has_path(data: dict[str, Any], path: list[str]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _deep_merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value
