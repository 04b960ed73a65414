// credclient drives a credential helper through docker-credential-helpers' client package,
// the code the docker CLI itself uses: Store, Get, List, Erase, and Get after Erase.
//
//	credclient HELPER-PATH SERVER
package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
)

func main() {
	program := client.NewShellProgramFunc(os.Args[1])
	server := os.Args[2]
	must(client.Store(program, &credentials.Credentials{
		ServerURL: server, Username: "alice", Secret: "glpat-go-client",
	}))
	fmt.Println("stored")
	creds, err := client.Get(program, server)
	must(err)
	fmt.Println("get:", creds.ServerURL, creds.Username, creds.Secret)
	list, err := client.List(program)
	must(err)
	fmt.Println("list:", list)
	// The secret is in the keyring, where secret-tool finds it.
	out, err := exec.Command("secret-tool", "lookup", "service", "docker-credential-gitlab",
		"username", server).Output()
	if err == nil && string(out) == "glpat-go-client" {
		fmt.Println("in keyring")
	}
	must(client.Erase(program, server))
	fmt.Println("erased")
	_, err = client.Get(program, server)
	if credentials.IsErrCredentialsNotFound(err) {
		fmt.Println("get after erase: not found")
	} else {
		fmt.Println("get after erase:", err)
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
