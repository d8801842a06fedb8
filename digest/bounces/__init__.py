"""Delivery reports that come back after a send: bounces and complaints, from a mailbox
or from an email provider's webhooks, recorded against the delivery ledger."""
