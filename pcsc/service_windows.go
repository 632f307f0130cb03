package pcsc

// ServiceName is the name of the operating system's PC/SC service as users
// and administrators know it: on Windows, the Smart Card service.
const ServiceName = "SCardSvr"

// StartServiceHint says how to start the service.
const StartServiceHint = "start the Smart Card service (services.msc, or as administrator: sc start SCardSvr)"
