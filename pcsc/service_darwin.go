package pcsc

// ServiceName is the name of the operating system's PC/SC service as users
// and administrators know it: on macOS, CryptoTokenKit's.
const ServiceName = "com.apple.ctkpcscd"

// StartServiceHint says how to start the service.
const StartServiceHint = "reconnect the reader; macOS starts its smart card service on demand"
