//go:build unix

package rotlog

import (
	"os"
	"syscall"
)

// openAppend opens path for appending (O_APPEND: every write lands at the
// end, whoever else appends), creating it with mode 0600.
func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}

// lockFile takes the exclusive advisory lock on f's file, waiting for it.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}

// unlockFile releases the lock of lockFile.
func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
