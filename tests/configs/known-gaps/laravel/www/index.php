<?php // public/index.php
