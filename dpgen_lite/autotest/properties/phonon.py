"""Phonons by finite displacements (phonopy): band structure along a standard path, DOS, Γ frequencies."""

from __future__ import annotations

import numpy as np

from .base import Property, _a, check_vector, register

DISP_FILE = "phonopy_disp.yaml"


def to_phonopy(atoms):
    """ASE Atoms -> ``PhonopyAtoms`` (Å)."""
    from phonopy.structure.atoms import PhonopyAtoms
    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions())


def band_path(phonon, path: str | None, npoints: int):
    """ASE ``BandPath`` of phonopy's primitive cell (``path`` like ``"GXWKGLUWLK,UX"``, None: ASE's
    standard path of the Bravais lattice, Setyawan & Curtarolo, Comput. Mater. Sci. 49, 299 (2010));
    its k-points are fractional coordinates of the primitive reciprocal cell, as phonopy wants."""
    from ase.cell import Cell
    return Cell(phonon.primitive.cell).bandpath(path, npoints=npoints)


@register
class Phonon(Property):
    """Harmonic phonons (THz) from phonopy's finite displacements of a supercell (forces by the calculator).

    Keys: ``supercell_size`` (3 ints, repetitions of the relaxed cell, default [2, 2, 2]),
    ``displacement`` (Å, default 0.01), ``band_path`` (ASE path string, default the standard path),
    ``band_points`` (q-points along the path, default 101), ``mesh`` (DOS q-mesh, default [10, 10, 10]).
    Displaced supercells are single points (no relaxation).  Force constants are not symmetrised, so
    the acoustic sum rule (three zero frequencies at Γ) holds only as well as the forces do.
    """

    name = "phonon"
    default_setting = {"relax_pos": False, "relax_shape": False, "relax_vol": False}
    extra_files = [DISP_FILE]

    @classmethod
    def args(cls):
        return [_a("supercell_size", list, "repetitions of the relaxed cell", default=[2, 2, 2]),
                _a("displacement", float, "atom displacement, Å", default=0.01),
                _a("band_path", str, "band path (ASE notation)", default=None),
                _a("band_points", int, "q-points along the path", default=101),
                _a("mesh", list, "DOS q-point mesh", default=[10, 10, 10])]

    def check(self, structure):
        check_vector(self.conf, "supercell_size", 3)
        check_vector(self.conf, "mesh", 3)

    def make(self, relaxed, folder):
        from phonopy import Phonopy
        phonon = Phonopy(to_phonopy(relaxed), supercell_matrix=np.diag(self.conf["supercell_size"]),
                         primitive_matrix="auto")
        phonon.generate_displacements(distance=self.conf["displacement"])
        phonon.save(str(folder / DISP_FILE))
        from ase import Atoms
        return [(Atoms(s.symbols, cell=s.cell, scaled_positions=s.scaled_positions, pbc=True), {"displacement": k})
                for k, s in enumerate(phonon.supercells_with_displacements)]

    def post(self, results, metas, relaxed, folder):
        import phonopy
        phonon = phonopy.load(str(folder / DISP_FILE), primitive_matrix="auto", produce_fc=False, log_level=0)
        phonon.forces = np.array([r.forces for r in results])
        phonon.produce_force_constants()
        path = band_path(phonon, self.conf["band_path"], self.conf["band_points"])
        phonon.run_qpoints(path.kpts)
        bands = phonon.qpoints.frequencies
        x, special_x, labels = path.get_linear_kpoint_axis()
        phonon.run_qpoints([[0, 0, 0]])
        gamma = phonon.qpoints.frequencies[0]
        phonon.run_mesh(self.conf["mesh"], is_gamma_center=True)
        phonon.run_total_dos()
        dos = {"frequency_points": phonon.total_dos.frequency_points, "total_dos": phonon.total_dos.dos}
        return {"band_qpoints": np.asarray(path.kpts).tolist(), "band_distance_inv_A": np.asarray(x).tolist(),
                "band_special_distance_inv_A": np.asarray(special_x).tolist(), "band_labels": list(labels),
                "band_frequencies_THz": np.asarray(bands).tolist(), "gamma_frequencies_THz": gamma.tolist(),
                "dos_frequency_THz": dos["frequency_points"].tolist(), "dos_states_per_THz": dos["total_dos"].tolist(),
                "max_frequency_THz": float(np.max(bands))}

    def report(self, res):
        lab = res["band_labels"]
        text = f"Phonons: band path {''.join(lab)}, {len(res['band_frequencies_THz'])} q-points\n"
        text += "frequencies at Gamma (THz): " + " ".join(f"{f:.4f}" for f in res["gamma_frequencies_THz"]) + "\n"
        x, bands = np.array(res["band_distance_inv_A"]), np.array(res["band_frequencies_THz"])
        for s, name in zip(res["band_special_distance_inv_A"], lab):
            k = int(np.argmin(abs(x - s)))
            text += f"{name:>3s}: " + " ".join(f"{f:8.4f}" for f in bands[k]) + " THz\n"
        return text + f"max frequency = {res['max_frequency_THz']:.4f} THz\n"

    @classmethod
    def scalars(cls, res):
        return {"phonon max ν (THz)": res["max_frequency_THz"]}

    @classmethod
    def plot(cls, ax, res, label):
        x, bands = np.array(res["band_distance_inv_A"]), np.array(res["band_frequencies_THz"])
        lines = ax.plot(x, bands, "-")
        for line in lines[1:]:
            line.set_color(lines[0].get_color())
        lines[0].set_label(label)
        ax.set_xticks(res["band_special_distance_inv_A"], [("Γ" if s == "G" else s) for s in res["band_labels"]])
        ax.set_ylabel("frequency (THz)")
        return True
