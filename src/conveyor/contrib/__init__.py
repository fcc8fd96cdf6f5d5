"""Integrations with the frameworks users already run: ``conveyor.contrib.django`` (Django 6 Tasks)."""
