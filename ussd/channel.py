"""The USSD channel as the core knows it: callers are their phone numbers; one dial, one session."""

from core.conversation.channel import Channel, Identifies

CHANNEL = Channel(
    name="ussd",
    session_ttl_s=lambda settings: settings.ussd_session_ttl_s,
    identifies=Identifies.NUMBER,
)
