"""Exports of the event log for analysts: events in a window, session documents as of an instant, file formats."""
