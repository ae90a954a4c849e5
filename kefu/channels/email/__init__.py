"""The email channel: inbound RFC 5322 mail in, outbound replies out.

``parse`` turns raw bytes from the SMTP listener or the IMAP poller into a plain
``ParsedEmail`` and never raises; threading, contacts and tickets are decided by
``actions``. See docs/email.md.
"""
