"""Collectors (sources): each turns one platform's native records into ECS events.

Every collector has a pydantic config model, a live mode (pull from, or receive pushes from, the
platform), a replay mode over the platform's native files, and a cursor so a restart resumes.
Mappers are pure functions from one native record to events, shared by live and replay modes.
"""
