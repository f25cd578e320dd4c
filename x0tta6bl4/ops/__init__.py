"""Operations: health checks (doctor), metrics export, deployment helpers."""
