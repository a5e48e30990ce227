"""Real test doubles shared by the test packages (servers on loopback, not mocks)."""
