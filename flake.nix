{
  # emogeo's pinned environments under Nix. Nix pins the interpreter and the system libraries
  # (nixpkgs by revision, flake.lock with its narHash); the Python packages come from the same
  # hashed locks as everywhere else (requirements/cpu.lock, requirements/cuda.lock), installed by
  # scripts/setup.sh into a venv of the checkout with `pip --require-hashes`. One source of truth for
  # every Python pin; the price is that the venv is built outside the Nix sandbox, with network.
  #
  #   nix develop                      # shell with Python 3.11 + the CPU venv (.venv-nix/cpu)
  #   nix run . -- reproduce           # any invoke task, CPU environment (run from the checkout)
  #   nix develop .#cuda               # paper-exact GPU stack (torch 2.6.0+cu124) in .venv-nix/cuda
  #   nix run .#cuda -- reproduce --models paper
  #
  # Why not nixpkgs' torch-bin / python311Packages.torch: nixpkgs carries one torch version per
  # revision (not 2.6.0 with transformer_lens 2.18.0 and transformers 4.57.6), and the CPU pins
  # (transformers 5.23.0, transformer_lens 3.9.0) are not in nixpkgs either.
  #
  # CUDA: the cu124 wheels bring the CUDA runtime; only the driver (libcuda.so) comes from the host.
  # On NixOS it is in /run/opengl-driver/lib (hardware.graphics.enable = true), which this flake puts
  # on LD_LIBRARY_PATH. On other Linux hosts the Nix-built Python must not load the host's whole
  # /usr/lib (glibc clash): point EMOGEO_CUDA_DRIVER_DIR at a directory holding only symlinks to the
  # host's libcuda.so* and libnvidia-*.so* (docs/ENVIRONMENTS.md), or use nixGL.
  description = "emogeo: pinned CPU and CUDA environments (Python 3.11 + hashed pip locks)";

  # nixos-25.05 at ac62194c (2026-01-02); its python311 is CPython 3.11.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/ac62194c3917d5f474c1a844b6fd6da2db95077d";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      python = pkgs.python311;
      # What manylinux wheels (torch, numpy, bitsandbytes) need from the system on NixOS.
      wheelLibs = pkgs.lib.makeLibraryPath [ pkgs.stdenv.cc.cc.lib pkgs.zlib ];

      # flavour: "cpu" (requirements/cpu.lock) or "cuda" (requirements/cuda.lock).
      envSetup = flavour: ''
        if [ ! -f tasks.py ] || [ ! -f requirements/${flavour}.lock ]; then
          echo "emogeo: run this from the emogeo checkout (tasks.py, requirements/${flavour}.lock)" >&2
          exit 2
        fi
        export LD_LIBRARY_PATH="${wheelLibs}:/run/opengl-driver/lib''${EMOGEO_CUDA_DRIVER_DIR:+:$EMOGEO_CUDA_DRIVER_DIR}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        PYTHON=${python}/bin/python3.11 EMOGEO_VENV=.venv-nix/${flavour} \
          EMOGEO_LOCK=requirements/${flavour}.lock bash scripts/setup.sh >&2
      '';

      mkApp = flavour: {
        type = "app";
        program = "${pkgs.writeShellApplication {
          name = "emogeo-${flavour}";
          runtimeInputs = [ python pkgs.coreutils pkgs.bash ];
          text = ''
            ${envSetup flavour}
            exec .venv-nix/${flavour}/bin/invoke "$@"
          '';
        }}/bin/emogeo-${flavour}";
      };

      mkShell = flavour: pkgs.mkShell {
        packages = [ python pkgs.coreutils pkgs.bash pkgs.git ];
        shellHook = ''
          ( ${envSetup flavour} ) && . .venv-nix/${flavour}/bin/activate
          export LD_LIBRARY_PATH="${wheelLibs}:/run/opengl-driver/lib''${EMOGEO_CUDA_DRIVER_DIR:+:$EMOGEO_CUDA_DRIVER_DIR}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        '';
      };
    in
    {
      devShells.${system} = {
        default = mkShell "cpu";
        cpu = mkShell "cpu";
        cuda = mkShell "cuda";
      };
      apps.${system} = {
        default = mkApp "cpu";
        cpu = mkApp "cpu";
        cuda = mkApp "cuda";
      };
    };
}
