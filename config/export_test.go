package config

// Hooks for the tests of package config_test.

// UnregisterTransport removes a kind registered by a test.
func UnregisterTransport(kind string) {
	registryMu.Lock()
	delete(transports, kind)
	registryMu.Unlock()
}

// UnregisterMiddleware removes a middleware registered by a test.
func UnregisterMiddleware(name string) {
	registryMu.Lock()
	delete(middlewares, name)
	registryMu.Unlock()
}
