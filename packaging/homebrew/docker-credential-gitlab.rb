# Homebrew formula: builds docker-credential-gitlab from its source release with cargo.
# packaging/release.sh writes the filled-in copy (version and checksum) next to the
# release files; this template is what it fills.
class DockerCredentialGitlab < Formula
  desc "Docker credential helper for GitLab container registries"
  homepage "https://gitlab.com/docker-credential-gitlab/docker-credential-gitlab"
  url "https://gitlab.com/docker-credential-gitlab/docker-credential-gitlab/-/releases/v@VERSION@/downloads/docker-credential-gitlab-@VERSION@.tar.gz"
  sha256 "@SOURCE_SHA256@"
  license any_of: ["MIT", "Apache-2.0"]

  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args
    (man1/"docker-credential-gitlab.1").write Utils.safe_popen_read(bin/"docker-credential-gitlab", "man")
    generate_completions_from_executable(bin/"docker-credential-gitlab", "completions")
  end

  def caveats
    <<~EOS
      Log in (validates the token, stores it in the keychain, configures Docker):
        docker-credential-gitlab login registry.gitlab.com
    EOS
  end

  test do
    assert_match "v#{version}", shell_output("#{bin}/docker-credential-gitlab version")
    assert_match "configure-docker", shell_output("#{bin}/docker-credential-gitlab --help")
  end
end
