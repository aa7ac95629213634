"""Health's application keys."""

from __future__ import annotations

from aiohttp import web

from server.health.evaluator import HealthEvaluator

HEALTH_EVALUATOR: web.AppKey[HealthEvaluator] = web.AppKey("health_evaluator")
