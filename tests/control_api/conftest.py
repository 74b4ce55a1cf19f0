"""Fixtures of the control API tests: a control database, resource stores, Stripe servers and app clients.

One app per configuration runs for the whole session (its lifespan started
once), and each test works on tenants with fresh random names, so tests do not
see each other's data and need no cleanup.

- `api`: billing `none`, the local store (the embedded runtime's).
- `kube_api`: billing `none`, the Kubernetes store against the API emulator.
- `stripe_api`: Stripe billing against `stripe_server`, which serves recorded
  responses for Checkout, the Customer Portal and Billing Meter events (none
  of which localstripe has) and passes every other call to a real localstripe.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
import yaml
from psycopg import sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import database_url
from livery.models.plan import Plan
from livery.store.base import CLI_FIELD_MANAGER, ResourceStore
from livery_control_api.app import create_app
from livery_control_api.billing.provider import NoBilling, StripeBilling
from livery_control_api.ratelimit import LoginLimiter, RedisLoginLimiter
from livery_control_api.settings import ControlApiSettings

DATA_DIR = Path(__file__).resolve().parent / "data"
PLANS_DIR = Path(__file__).resolve().parents[2] / "livery" / "plans"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
WEBHOOK_SECRET = "whsec_test_livery_0123456789"
STRIPE_KEY = "sk_test_livery"
BASE_DOMAIN = "livery.test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bundled_plans() -> list[Plan]:
    return [Plan.model_validate(yaml.safe_load(path.read_text())) for path in sorted(PLANS_DIR.glob("*.yaml"))]


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class StaticDns:
    """A DNS resolver for tests: TXT records are whatever the test publishes."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}

    async def txt_records(self, name: str) -> list[str]:
        return list(self.records.get(name, []))


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))

    def last_link(self, to: str) -> str:
        for recipient, _, body in reversed(self.sent):
            if recipient == to:
                return body.split("Open ", 1)[1].split(" ", 1)[0]
        raise LookupError(f"no email to {to}")


@pytest.fixture(scope="session")
def control_database(postgres_url: str) -> Iterator[str]:
    """Create one control database for the session and return its URL."""
    name = f"livery_control_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield database_url(postgres_url, name)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def api_settings(control_database: str, **overrides: Any) -> ControlApiSettings:
    values = {
        "database_url": control_database,
        "admin_token": ADMIN_TOKEN,
        "jwt_secret": "test-jwt-secret-0123456789abcdef0123456789",
        "base_domain": BASE_DOMAIN,
        "public_url": "http://127.0.0.1:8000",
        "grace_check_seconds": 3600,
        # Cheap hashes keep the suite fast; the benchmark measures the production cost.
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
        "password_hash_parallelism": 1,
        **overrides,
    }
    return ControlApiSettings(**values)


async def load_plans(store: ResourceStore) -> None:
    for plan in bundled_plans():
        await store.apply_plan(plan, CLI_FIELD_MANAGER)


@pytest.fixture(scope="session")
async def local_store(control_database: str) -> AsyncIterator[ResourceStore]:
    from livery.store.local import LocalStore

    store = await LocalStore.open(control_database)
    await load_plans(store)
    yield store
    await store.close()


@pytest.fixture(scope="session")
async def kube_store(kube) -> AsyncIterator[ResourceStore]:
    from livery.store.kubernetes import KubernetesStore

    store = KubernetesStore.from_kubeconfig(str(kube.kubeconfig))
    await load_plans(store)
    yield store
    store.close()


class ApiClient:
    """An httpx client for one app, with helpers that sign up tenants and sign in."""

    def __init__(self, app, http: httpx.AsyncClient, dns: StaticDns, mailer: RecordingMailer) -> None:
        self.app = app
        self.http = http
        self.dns = dns
        self.mailer = mailer

    @property
    def context(self):
        return self.app.state.context

    async def signup(self, plan: str = "free", tenant: str | None = None, email: str | None = None,
                     password: str = "correct horse battery") -> tuple[httpx.Response, str, str]:
        tenant = tenant or unique_name()
        email = email or f"{tenant}@example.com"
        response = await self.http.post(
            "/v1/signup",
            json={"tenant": tenant, "displayName": f"{tenant} Inc", "email": email, "password": password, "plan": plan},
        )
        return response, tenant, email

    async def token(self, email: str, password: str = "correct horse battery") -> str:
        response = await self.http.post("/v1/auth/token", data={"username": email, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def owner(self, plan: str = "free") -> tuple[str, dict[str, str]]:
        """Sign up a tenant and return its name with the owner's Authorization header."""
        response, tenant, email = await self.signup(plan=plan)
        assert response.status_code == 201, response.text
        return tenant, {"Authorization": f"Bearer {await self.token(email)}"}

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return await self.http.request(method, path, headers=headers, **kwargs)


@contextlib.asynccontextmanager
async def running_api(settings: ControlApiSettings, store: ResourceStore, billing) -> AsyncIterator[ApiClient]:
    dns, mailer = StaticDns(), RecordingMailer()
    app = create_app(settings=settings, store=store, billing=billing, dns_resolver=dns, mailer=mailer)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield ApiClient(app, http, dns, mailer)


@pytest.fixture(scope="session")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


@pytest.fixture(scope="session")
async def api(control_database: str, local_store: ResourceStore, files_dir: Path) -> AsyncIterator[ApiClient]:
    """The control API with billing `none`, the local store and local file storage."""
    settings = api_settings(control_database, files_dir=str(files_dir))
    async with running_api(settings, local_store, NoBilling()) as client:
        yield client


@pytest.fixture(scope="session")
async def kube_api(control_database: str, kube_store: ResourceStore) -> AsyncIterator[ApiClient]:
    """The control API with billing `none` and the Kubernetes store against the emulator."""
    async with running_api(api_settings(control_database), kube_store, NoBilling()) as client:
        yield client


@pytest.fixture(scope="session")
def redis_server(redis_url: str | None) -> Iterator[str]:
    """Return `LIVERY_REDIS_URL`, or start a redis-server on 127.0.0.1 for the session."""
    if redis_url:
        yield redis_url
        return
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("needs LIVERY_REDIS_URL or redis-server (apt-get install -y redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


# Stripe.


def stripe_examples() -> dict[str, Any]:
    return json.loads((DATA_DIR / "stripe-example-objects.json").read_text())["resources"]


class StripeServer:
    """Recorded responses for the Stripe calls localstripe lacks; the rest goes to localstripe."""

    def __init__(self, localstripe_url: str) -> None:
        self.localstripe_url = localstripe_url
        self.examples = stripe_examples()
        self.checkout_sessions: list[dict[str, Any]] = []
        self.meter_events: dict[str, dict[str, Any]] = {}
        self.url = ""
        self.failing_checkouts = 0

    async def create_checkout_session(self, request: Request) -> Response:
        form = dict((await request.form()).multi_items())
        if self.failing_checkouts > 0:
            self.failing_checkouts -= 1
            return JSONResponse({"error": {"type": "api_error", "message": "recorded failure"}}, status_code=500)
        session = copy.deepcopy(self.examples["checkout.session"])
        session_id = f"cs_test_{uuid.uuid4().hex}"
        now = int(time.time())
        session.update(
            id=session_id,
            created=now,
            # Stripe's default: a session can be paid for 24 hours.
            expires_at=now + 24 * 3600,
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
            mode=form.get("mode"),
            client_reference_id=form.get("client_reference_id"),
            customer_email=form.get("customer_email"),
            success_url=form.get("success_url"),
            cancel_url=form.get("cancel_url"),
            metadata={key[9:-1]: value for key, value in form.items() if key.startswith("metadata[")},
            status="open",
        )
        self.checkout_sessions.append({"form": form, "session": session, "idempotency_key": request.headers.get("idempotency-key")})
        return JSONResponse(session)

    async def create_portal_session(self, request: Request) -> Response:
        form = dict((await request.form()).multi_items())
        session = copy.deepcopy(self.examples["billing_portal.session"])
        session.update(id=f"bps_{uuid.uuid4().hex}", customer=form.get("customer"), return_url=form.get("return_url"),
                       url=f"https://billing.stripe.com/p/session/{uuid.uuid4().hex}")
        return JSONResponse(session)

    async def create_meter_event(self, request: Request) -> Response:
        form = dict((await request.form()).multi_items())
        event = copy.deepcopy(self.examples["billing.meter_event"])
        event.update(identifier=form["identifier"], event_name=form["event_name"],
                     payload={"stripe_customer_id": form["payload[stripe_customer_id]"], "value": form["payload[value]"]})
        # Stripe counts a meter event identifier once, so a repeat leaves the first in place.
        self.meter_events.setdefault(form["identifier"], event)
        return JSONResponse(event)

    async def forward(self, request: Request) -> Response:
        async with httpx.AsyncClient(base_url=self.localstripe_url) as client:
            upstream = await client.request(
                request.method, request.url.path, params=request.query_params, content=await request.body(),
                headers={key: value for key, value in request.headers.items() if key.lower() not in ("host", "content-length")},
            )
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/checkout/sessions", self.create_checkout_session, methods=["POST"]),
            Route("/v1/billing_portal/sessions", self.create_portal_session, methods=["POST"]),
            Route("/v1/billing/meter_events", self.create_meter_event, methods=["POST"]),
            Route("/{path:path}", self.forward, methods=["GET", "POST", "DELETE"]),
        ])


class ThreadedServer:
    """A uvicorn server on 127.0.0.1 in a background thread."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """Run localstripe as a real server in its own process, listening on 127.0.0.1 only.

    Its `localstripe` command binds every interface and has no host option, so
    the process runs localstripe's aiohttp app with `host="127.0.0.1"` itself,
    starting from an empty store as `--from-scratch` does.
    """
    port = free_port()
    program = (
        "import sys\n"
        "from aiohttp import web\n"
        "from localstripe.server import app\n"
        "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/v1/customers", auth=(STRIPE_KEY, ""), timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("localstripe did not start") from None
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def stripe_server(localstripe_url: str) -> Iterator[StripeServer]:
    fake = StripeServer(localstripe_url)
    server = ThreadedServer(fake.app()).start()
    fake.url = server.url
    yield fake
    server.stop()


@pytest.fixture(scope="session")
async def stripe_api(control_database: str, local_store: ResourceStore, stripe_server: StripeServer) -> AsyncIterator[ApiClient]:
    """The control API with Stripe billing against `stripe_server` and the local store."""
    settings = api_settings(control_database, stripe_api_key=STRIPE_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                            stripe_api_base=stripe_server.url, grace_period_hours=1)
    billing = StripeBilling(STRIPE_KEY, WEBHOOK_SECRET, api_base=stripe_server.url)
    async with running_api(settings, local_store, billing) as client:
        yield client


def sign_payload(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Return a Stripe-Signature header value: `t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def stripe_event(event_type: str, obj: dict[str, Any], created: int, event_id: str | None = None) -> dict[str, Any]:
    """Build an event in the shape of Stripe's published example event."""
    event = copy.deepcopy(stripe_examples()["event"])
    event.update(id=event_id or f"evt_{uuid.uuid4().hex}", type=event_type, created=created, data={"object": obj})
    return event


def subscription_object(subscription_id: str, customer: str, status: str, price: str, tenant: str, created: int) -> dict[str, Any]:
    """Build a subscription from Stripe's example, with its period on the item as in current API versions."""
    subscription = copy.deepcopy(stripe_examples()["subscription"])
    subscription.update(id=subscription_id, customer=customer, status=status, metadata={"tenant": tenant}, created=created)
    item = subscription["items"]["data"][0]
    item["price"]["id"] = price
    item["current_period_end"] = created + 30 * 86400
    item["current_period_start"] = created
    subscription["items"]["data"] = [item]
    return subscription


async def post_event(client: ApiClient, event: dict[str, Any], **sign_options: Any) -> httpx.Response:
    payload = json.dumps(event).encode()
    return await client.http.post(
        "/v1/billing/webhook", content=payload,
        headers={"Stripe-Signature": sign_payload(payload, **sign_options), "Content-Type": "application/json"},
    )


@pytest.fixture
async def fresh_limiter(api):
    """Start and end with empty sign-in counters: every test client shares one address."""
    await api.context.limiter.reset()
    yield api.context.limiter
    await api.context.limiter.reset()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request):
    """A login limiter that allows 3 failures a minute, counting in this process or in Redis."""
    if request.param == "memory":
        yield LoginLimiter(3, clock=lambda: 100.0)
        return
    server = request.getfixturevalue("redis_server")
    redis_limiter = RedisLoginLimiter(server, 3)
    await redis_limiter.reset()
    yield redis_limiter
    await redis_limiter.close()
