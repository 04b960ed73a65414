/* credread TARGET: prints the blob of the generic credential TARGET from the Windows
 * Credential Manager as hex, or exits 1 when there is none. tests/windows.rs uses it to look
 * into the store behind the helper's back, as secret-tool does for the Secret Service. */
#include <windows.h>
#include <wincred.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv)
{
    PCREDENTIALW cred;
    DWORD i;
    if (argc != 2)
        return 2;
    if (!CredReadW(argv[1], CRED_TYPE_GENERIC, 0, &cred))
        return 1;
    for (i = 0; i < cred->CredentialBlobSize; i++)
        printf("%02x", cred->CredentialBlob[i]);
    printf("\n");
    CredFree(cred);
    return 0;
}
