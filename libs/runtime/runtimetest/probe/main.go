// Command probe is the program the runtime contract tests run, on the host or in a scratch image. Its
// first argument picks what it does; see runtimetest.Contract.
//
//	probe argv ARG...            print the remaining arguments as a JSON array on stdout
//	probe env                    print the environment, sorted, as a JSON array on stdout
//	probe pwd                    print the working directory on stdout
//	probe exit CODE OUT ERR      write OUT to stdout and ERR to stderr, then exit with CODE
//	probe cat FILE               copy FILE to stdout
//	probe write FILE TEXT        write TEXT to FILE
//	probe sleep                  print "ready" and block (SIGTERM ends it)
//	probe ignore-term            ignore SIGTERM, print "ready" and block
//	probe spawn PIDFILE          start "probe sleep" as a child, write its pid to PIDFILE, print "ready", block
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe argv|env|pwd|exit|sleep|ignore-term|spawn ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "argv":
		printJSON(os.Args[2:])
	case "env":
		env := os.Environ()
		sort.Strings(env)
		printJSON(env)
	case "pwd":
		wd, err := os.Getwd()
		check(err)
		fmt.Println(wd)
	case "exit":
		if len(os.Args) != 5 {
			fmt.Fprintln(os.Stderr, "usage: probe exit CODE OUT ERR")
			os.Exit(2)
		}
		code, err := strconv.Atoi(os.Args[2])
		check(err)
		fmt.Fprint(os.Stdout, os.Args[3])
		fmt.Fprint(os.Stderr, os.Args[4])
		os.Exit(code)
	case "cat":
		b, err := os.ReadFile(os.Args[2])
		check(err)
		os.Stdout.Write(b)
	case "write":
		check(os.WriteFile(os.Args[2], []byte(os.Args[3]), 0o644))
	case "sleep":
		fmt.Println("ready")
		block()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		block()
	case "spawn":
		exe, err := os.Executable()
		check(err)
		child := exec.Command(exe, "sleep")
		check(child.Start())
		check(os.WriteFile(os.Args[2], []byte(strconv.Itoa(child.Process.Pid)), 0o644))
		fmt.Println("ready")
		block()
	default:
		fmt.Fprintf(os.Stderr, "probe: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

func printJSON(v any) {
	b, err := json.Marshal(v)
	check(err)
	os.Stdout.Write(append(b, '\n'))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(3)
	}
}

// block waits forever; a timer keeps the Go runtime from reporting a deadlock.
func block() {
	for {
		time.Sleep(time.Hour)
	}
}
