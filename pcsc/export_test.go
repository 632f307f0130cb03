package pcsc

// EventCount returns pcsc-lite's insertion/removal counter of a status
// (the upper 16 bits of dwEventState), for the tests of WaitForChange.
func EventCount(s ReaderStatus) uint32 { return uint32(s.state >> 16) }

// RawState returns the whole dwEventState of a status, for test messages.
func RawState(s ReaderStatus) uint32 { return uint32(s.state) }
