module github.com/spoolq/spool

go 1.26

require (
	github.com/klauspost/compress v1.20.3
	github.com/spf13/pflag v1.1.0
)
