//go:build windows

package rotlog

import (
	"os"
	"syscall"
	"unsafe"
)

var (
	kernel32         = syscall.NewLazyDLL("kernel32.dll")
	procLockFileEx   = kernel32.NewProc("LockFileEx")
	procUnlockFileEx = kernel32.NewProc("UnlockFileEx")
)

// Windows constants the syscall package lacks.
const (
	lockfileExclusiveLock = 0x2
	fileReadAttributes    = 0x80
	fileWriteAttributes   = 0x100
)

// openAppend opens path for appending (FILE_APPEND_DATA: every write lands
// at the end, whoever else appends), creating it. FILE_SHARE_DELETE lets
// another process rename the file while this one holds it open, which
// rotation needs; os.OpenFile does not ask for it. Without FILE_WRITE_DATA
// the handle cannot truncate, so when a rename fails the record is refused
// rather than written past the bound. The mode is left to the directory's
// ACL (the user's profile).
func openAppend(path string) (*os.File, error) {
	p, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := syscall.CreateFile(p, syscall.FILE_APPEND_DATA|syscall.SYNCHRONIZE|fileReadAttributes|fileWriteAttributes,
		syscall.FILE_SHARE_READ|syscall.FILE_SHARE_WRITE|syscall.FILE_SHARE_DELETE, nil, syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}

// lockFile takes an exclusive lock on the first byte of f's file, waiting
// for it. Byte-range locks need no byte to exist.
func lockFile(f *os.File) error {
	var ol syscall.Overlapped
	r, _, err := procLockFileEx.Call(f.Fd(), lockfileExclusiveLock, 0, 1, 0, uintptr(unsafe.Pointer(&ol)))
	if r == 0 {
		return err
	}
	return nil
}

// unlockFile releases the lock of lockFile.
func unlockFile(f *os.File) {
	var ol syscall.Overlapped
	_, _, _ = procUnlockFileEx.Call(f.Fd(), 0, 1, 0, uintptr(unsafe.Pointer(&ol)))
}
