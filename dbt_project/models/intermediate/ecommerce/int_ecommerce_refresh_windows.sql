{#- Per workspace, the first day the ecommerce daily tables rebuild (macro refresh_windows). -#}
{{ refresh_windows('ecommerce') }}
