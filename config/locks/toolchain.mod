module stack.local/source/toolchain

go 1.21

require golang.org/toolchain v0.0.1-go1.26.11.linux-amd64
