{#- Per workspace, the days before its refresh_from that the ecommerce daily tables rebuild alone:
    those whose inputs changed (macro refresh_changed_days). -#}
{{ refresh_changed_days('ecommerce') }}
