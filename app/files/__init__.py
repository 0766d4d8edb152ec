"""Attachments: uploaded images and PDFs, stored in PostgreSQL, carried by user messages."""
