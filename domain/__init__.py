"""The pure domain: aggregates, events, value objects and money rules.

Nothing here imports a driver, a framework or an outer layer of this project.
"""
