"""Notification channels: a log line, a webhook, an HTTP SMS gateway, WeChat template
messages. Each HTTP send carries the notification's id as ``Idempotency-Key``, so a send
repeated after a crash (sent, but not yet recorded as sent) is recognised by the
receiver and the tenant is told once."""

from __future__ import annotations

import logging
from string import Template

import httpx

log = logging.getLogger("prepaid.notifications")
TIMEOUT_S = 10.0


class LogNotifier:
    name = "log"

    def send(self, notification_id: str, recipient: str | None, text: str) -> None:
        log.warning("notification %s to %s: %s", notification_id, recipient or "-", text)


class WebhookNotifier:
    name = "webhook"

    def __init__(self, url: str, http: httpx.Client | None = None) -> None:
        self.url = url
        self.http = http or httpx.Client(timeout=TIMEOUT_S)

    def send(self, notification_id: str, recipient: str | None, text: str) -> None:
        response = self.http.post(self.url, json={"id": notification_id,
                                                  "recipient": recipient, "text": text},
                                  headers={"Idempotency-Key": notification_id})
        response.raise_for_status()


class SmsNotifier:
    """An HTTP SMS gateway: POSTs ``{"phone", "message"}`` built from a template with
    ``$text``."""

    name = "sms"

    def __init__(self, url: str, template: str, http: httpx.Client | None = None) -> None:
        self.url = url
        self.template = Template(template)
        self.http = http or httpx.Client(timeout=TIMEOUT_S)

    def send(self, notification_id: str, recipient: str | None, text: str) -> None:
        if not recipient:
            raise ValueError("the account has no phone number")
        response = self.http.post(self.url, json={
            "phone": recipient, "message": self.template.safe_substitute(text=text)},
            headers={"Idempotency-Key": notification_id})
        response.raise_for_status()


class WechatTemplateNotifier:
    """WeChat template messages through a configured endpoint (the official account's
    message API or a relay holding its access token)."""

    name = "wechat"

    def __init__(self, url: str, template_id: str, http: httpx.Client | None = None) -> None:
        self.url = url
        self.template_id = template_id
        self.http = http or httpx.Client(timeout=TIMEOUT_S)

    def send(self, notification_id: str, recipient: str | None, text: str) -> None:
        if not recipient:
            raise ValueError("the account has no WeChat recipient")
        response = self.http.post(self.url, json={
            "touser": recipient, "template_id": self.template_id,
            "data": {"content": {"value": text}}}, headers={"Idempotency-Key": notification_id})
        response.raise_for_status()


def notifiers_from(settings) -> dict[str, object]:
    found: dict[str, object] = {}
    for name in [n.strip() for n in settings.notify_channels.split(",") if n.strip()]:
        if name == "log":
            found[name] = LogNotifier()
        elif name == "webhook" and settings.webhook_url:
            found[name] = WebhookNotifier(settings.webhook_url)
        elif name == "sms" and settings.sms_url:
            found[name] = SmsNotifier(settings.sms_url, settings.sms_template)
        elif name == "wechat" and settings.wechat_template_url and settings.wechat_template_id:
            found[name] = WechatTemplateNotifier(settings.wechat_template_url,
                                                 settings.wechat_template_id)
    return found
