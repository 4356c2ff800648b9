package ci

import (
	"os"
	"syscall"
)

// watchDir calls wake whenever an entry is created in dir (inotify), so
// the runner starts a job as soon as Enqueue marks it instead of at its
// next poll. It returns a function that stops watching. If inotify is not
// available it returns an error and the runner relies on polling alone.
func watchDir(dir string, wake func()) (stop func(), err error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("inotify_add_watch", err)
	}
	// A non-blocking descriptor goes to the runtime's poller, so Close
	// ends the pending Read.
	f := os.NewFile(uintptr(fd), "inotify:"+dir)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			wake()
		}
	}()
	return func() { f.Close() }, nil
}
