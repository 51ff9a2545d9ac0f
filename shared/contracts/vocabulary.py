"""The words event contracts and register policies share: the contact channels, the event types a platform
sends, and the parts of a contact that have their own retention clock.

They sit below both (shared.contracts.events and shared.policy import them from here), so a policy file and an
event are checked against one list.
"""

from __future__ import annotations

from enum import StrEnum


class ArtifactClass(StrEnum):
    """Parts of a contact with their own retention clock (shared.contracts.events names the same classes)."""

    RECORDING = "recording"
    CONTACT_HISTORY = "contact_history"
    MESSAGES = "messages"
    CHATBOT_IDENTIFIERS = "chatbot_identifiers"
    PARTICIPANT_DATA = "participant_data"
    SURVEY_ANSWERS = "survey_answers"
    CASE_DATA = "case_data"
    ATTACHMENTS = "attachments"
    IDENTIFICATION = "identification"


class EventType(StrEnum):
    """Contact event types a register may accept (shared.contracts.events holds their contracts)."""

    CALL_STARTED = "call.started"
    CALL_ANSWERED = "call.answered"
    CALL_ENDED = "call.ended"
    CHAT_STARTED = "chat.started"
    CHAT_MESSAGE = "chat.message"
    CHAT_ENDED = "chat.ended"
    CHATBOT_MESSAGE = "chatbot.message"
    SMS_SURVEY_SENT = "sms_survey.sent"
    SMS_SURVEY_ANSWERED = "sms_survey.answered"
    CASE_OPENED = "case.opened"
    CASE_CLOSED = "case.closed"
    EMAIL_RECEIVED = "email.received"
    IDENTIFICATION = "identification"


class Channel(StrEnum):
    """Contact channels (the same values as shared.contracts.events.Channel)."""

    PHONE = "phone"
    CHAT = "chat"
    CHATBOT = "chatbot"
    SMS = "sms"
    EMAIL = "email"
    CASE = "case"
    IDENTIFICATION = "identification"
